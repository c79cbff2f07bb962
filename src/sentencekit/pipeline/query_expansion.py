"""Per-task input lengths and ColBERT query expansion, torch-free (the Transformer module and the ONNX Runtime
multi-vector engine both call these, on NumPy arrays).

**Lengths.** A multi-vector ``Transformer`` may cut queries at ``query_length`` and documents at
``document_length`` (else at ``max_seq_length``). **Query expansion** (Khattab & Zaharia, ColBERT, SIGIR
2020: "query augmentation"; behaviour and config as sentence-transformers 6.2's ``QueryExpansionConfig``)
makes every query at least ``length`` tokens: the padding positions below ``length`` become ``token`` (the
tokenizer's mask token by default, else its EOS token) and are recorded in
``features["query_expansion_positions"]``; the attention mask stays 0 there unless ``attend`` (the encoder
does not attend to them, MaxSim still scores them, through ``MultiVectorMask``).

- ``strategy="fixed"``: queries are cut at ``length`` and padded up to it (exactly ``length`` tokens);
- ``strategy="min"``: ``length`` is only the floor; the ceiling is ``max(query_length, length)`` (or
  ``max_seq_length`` without a ``query_length``).

**What counts as truncation** (the ``TruncationWarning`` and ``model.last_encode_info``): content cut at the
task's limit, i.e. a query longer than ``length`` under ``"fixed"`` (or than the ceiling under ``"min"``, or
than ``query_length`` without expansion), a document longer than ``document_length``. Padding a short query
with expansion tokens is the design, not truncation.

>>> check_query_expansion({"strategy": "fixed", "length": 4})
{'strategy': 'fixed', 'attend': False, 'token': None, 'length': 4}
>>> out = expand_queries({"input_ids": np.array([[101, 7, 102]]), "attention_mask": np.array([[1, 1, 1]])},
...                      {"strategy": "fixed", "attend": False, "token": None, "length": 5}, expansion_id=103)
>>> out["input_ids"].tolist(), out["attention_mask"].tolist(), out["query_expansion_positions"].tolist()
([[101, 7, 102, 103, 103]], [[1, 1, 1, 0, 0]], [[False, False, False, True, True]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

STRATEGIES = ("fixed", "min")
_KEYS = {"strategy", "attend", "token", "length"}


def check_query_expansion(value: Any) -> dict[str, Any] | None:
    """``value`` validated and completed to the four saved keys (``strategy``, ``attend``, ``token``,
    ``length``), or ``None`` (no expansion). Raises ``ValueError`` naming the bad key."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"query_expansion must be a dict such as {{'strategy': 'fixed', 'length': 32}} or None, "
                         f"got {type(value).__name__}.")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ValueError(f"query_expansion has unknown keys {unknown}; valid keys: {sorted(_KEYS)}.")
    strategy = value.get("strategy")
    if strategy not in STRATEGIES:
        raise ValueError(f"query_expansion['strategy'] must be one of {STRATEGIES}, got {strategy!r}.")
    attend = value.get("attend", False)
    if not isinstance(attend, bool):
        raise ValueError(f"query_expansion['attend'] must be a bool, got {attend!r}.")
    token = value.get("token")
    if token is not None and not isinstance(token, str):
        raise ValueError(f"query_expansion['token'] must be a token string or None, got {token!r}.")
    length = value.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ValueError(f"query_expansion['length'] must be a positive int (the query width after expansion; classic "
                         f"ColBERT uses 32), got {length!r}.")
    return {"strategy": strategy, "attend": attend, "token": token, "length": length}


def check_lengths(query_length: int | None, document_length: int | None, expansion: dict[str, Any] | None) -> None:
    """``ValueError`` for a length that is not a positive int, or a ``query_length`` below the expansion length
    (the expansion length is the queries' width floor, so a smaller cap contradicts it)."""
    for name, value in (("query_length", query_length), ("document_length", document_length)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}.")
    if expansion is not None and query_length is not None and query_length < expansion["length"]:
        raise ValueError(f"query_length={query_length} is smaller than query_expansion['length']="
                         f"{expansion['length']}: the expansion length is the query width floor. Drop query_length, "
                         "raise it to at least the expansion length, or lower the expansion length.")


def task_max_length(task: str | None, *, max_seq_length: int | None, query_length: int | None,
                    document_length: int | None, expansion: dict[str, Any] | None,
                    override: int | None = None) -> int | None:
    """The length inputs of ``task`` are cut at (see the module docstring). ``override`` (a trainer's
    ``max_length``, sentence-transformers 6.2's rule) replaces the task's length, except for expanded queries:
    ``"fixed"`` keeps its ``length`` (the queries' width), ``"min"`` takes ``max(override, length)``."""
    if task == "query" and expansion is not None:
        if expansion["strategy"] == "fixed":
            return expansion["length"]
        if override is not None:
            return max(override, expansion["length"])
        return max(query_length, expansion["length"]) if query_length is not None else max_seq_length
    if override is not None:
        return override
    if task == "query":
        return query_length if query_length is not None else max_seq_length
    if task == "document" and document_length is not None:
        return document_length
    return max_seq_length


def expand_queries(arrays: dict[str, np.ndarray], expansion: dict[str, Any], expansion_id: int | None,
                   ) -> dict[str, np.ndarray]:
    """A padded query batch (``input_ids``, ``attention_mask``, optional ``token_type_ids``; ``[b, w]``) with its
    padding below ``expansion["length"]`` turned into expansion tokens (widened to ``length`` first when the
    batch is narrower), plus ``query_expansion_positions`` ``[b, w']`` bool. A new dict; the inputs are not
    changed. ``expansion_id=None`` keeps the pad ids there (a tokenizer without mask or EOS token)."""
    floor = expansion["length"]
    out = dict(arrays)
    width = out["input_ids"].shape[1]
    if width < floor:
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in out:
                out[name] = np.pad(out[name], ((0, 0), (0, floor - width)))
    positions = (out["attention_mask"] == 0) & (np.arange(out["input_ids"].shape[1]) < floor)[None, :]
    if expansion_id is not None:
        out["input_ids"] = np.where(positions, expansion_id, out["input_ids"]).astype(out["input_ids"].dtype)
    if expansion["attend"]:
        out["attention_mask"] = np.where(positions, 1, out["attention_mask"]).astype(out["attention_mask"].dtype)
    out["query_expansion_positions"] = positions
    return out


__all__ = ["check_query_expansion", "check_lengths", "task_max_length", "expand_queries", "STRATEGIES"]
