"""The multi-vector family's last step of the one encode pipeline (:func:`sentencekit.pipeline.encode.run_pipeline`),
as sentence-transformers 6.2's ``MultiVectorEncoder.encode`` returns its results:

per batch, as it comes from the engine: cut each input's ``token_embeddings`` to the tokens its scoring mask
keeps (``attention_mask`` after ``MultiVectorMask``: real tokens, plus query-expansion positions for queries,
minus skiplisted document tokens), L2-normalise them when asked (``normalize_embeddings``), pool them per call
(``token_pooling=``), and move them to the CPU as float32 NumPy when asked (``convert_to_numpy``); with
``output_value=None`` keep every per-input feature instead (unsliced; the pooling per call still applies).
After all batches: restore input order.

Engine-neutral: a batch's arrays are torch tensors (torch engine; rows stay on the model's device unless
``convert_to_numpy``) or NumPy arrays (the torch-free engine; torch is never imported).

>>> import numpy as np
>>> step = multivector_batch_step(output_value="token_embeddings", normalize_embeddings=False, token_pooling=None,
...                               task=None, convert_to_numpy=True)
>>> out = step({"token_embeddings": np.arange(12, dtype=np.float32).reshape(2, 3, 2),
...             "attention_mask": np.array([[1, 1, 0], [1, 0, 1]], dtype=bool)})
>>> [r.tolist() for r in out["rows"]]
[[[0.0, 1.0], [2.0, 3.0]], [[6.0, 7.0], [10.0, 11.0]]]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from sentencekit.pipeline.postprocess import is_tensor, l2_normalize, to_numpy

logger = logging.getLogger(__name__)
_warned_compounding = False

OUTPUT_VALUES = ("token_embeddings", None)


def check_output_value(output_value: Any) -> None:
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be 'token_embeddings' (per-input token vectors) or None (per-input "
                         f"feature dicts), got {output_value!r}.")


def warn_compounding(token_pooling: Any, task: str | None, model_pools: bool) -> None:
    """One note (per process) when a per-call pooling pools what the model's own pooling already pooled."""
    global _warned_compounding
    if model_pools and not _warned_compounding and token_pooling.applies_to(task):
        _warned_compounding = True
        logger.warning("This model already pools tokens in its pipeline: token_pooling= pools again on top of it "
                       "(compounding). Leave it out to keep only the model's own pooling.")


def _pooled_features(features: dict[str, Any], token_pooling: Any, task: str | None) -> dict[str, Any]:
    """``features`` after ``token_pooling`` (its token vectors and scoring mask rewritten)."""
    if not token_pooling.applies_to(task):
        return features
    if is_tensor(features["token_embeddings"]):
        return token_pooling(dict(features), task=task)
    from sentencekit.token_clusters import repad

    tokens = features["token_embeddings"]
    rows = token_pooling.pool_arrays([t[m.astype(bool)] for t, m in zip(tokens, features["attention_mask"])],
                                     task=task)
    padded, mask = repad(rows, tokens.shape[-1], tokens.dtype)
    return {**features, "token_embeddings": padded, "attention_mask": mask}


def multivector_batch_step(*, output_value: str | None, normalize_embeddings: bool, token_pooling: Any,
                           task: str | None, convert_to_numpy: bool,
                           ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The per-batch step (``run_batches(batch_step=...)``): ``{"rows": [one result per input of the batch]}``
    (see the module docstring)."""

    def step(out: dict[str, Any]) -> dict[str, Any]:
        if output_value is None:
            features = out if token_pooling is None else _pooled_features(out, token_pooling, task)
            n = len(features["token_embeddings"])
            return {"rows": [{name: value[i] for name, value in features.items() if len(value) == n}
                             for i in range(n)]}
        tokens, masks = out["token_embeddings"], out["attention_mask"]
        if is_tensor(masks):
            rows = [t[m] for t, m in zip(tokens, masks.bool())]
        else:
            rows = [t[np.asarray(m, dtype=bool)] for t, m in zip(tokens, masks)]
        if normalize_embeddings:
            rows = [l2_normalize(r) for r in rows]
        if token_pooling is not None:
            rows = token_pooling.pool(rows, task=task) if rows and is_tensor(rows[0]) else \
                token_pooling.pool_arrays(rows, task=task)
        if convert_to_numpy:
            rows = [to_numpy(r).astype(np.float32, copy=False) for r in rows]
        return {"rows": rows}

    return step


def gather_rows(parts: list[list[Any]], inverse: np.ndarray) -> list[Any]:
    """The batches' results (from :func:`multivector_batch_step`) in input order."""
    rows = [row for part in parts for row in part]
    return [rows[i] for i in inverse]


__all__ = ["multivector_batch_step", "gather_rows", "check_output_value", "warn_compounding", "OUTPUT_VALUES"]
