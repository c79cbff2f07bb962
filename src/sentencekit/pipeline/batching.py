"""Batching shared by every model family and backend: validate inputs, sort by TOKEN length (longest
first) so each batch pads little, cut batches by count and by a padded-token budget, run them (with an
optional progress bar) and put results back in input order. Rows longer than
``ATTENTION_REFERENCE_LENGTH`` tokens are also cut by attention memory (rows x length^2), so 8k-token texts
run a few at a time whatever ``batch_size`` says (:func:`resolve_batching`).

>>> plan = plan_batches([3, 20, 5, 19], batch_size=8, max_batch_tokens=40)
>>> [b.tolist() for b in plan]
[[1, 3], [2, 0]]
>>> round(padding_waste([3, 20, 5, 19], plan), 3)
0.06
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EncodeInfo:
    """What the last ``encode`` / ``predict`` call in this thread did: how many inputs were longer than
    ``max_seq_length`` and were cut (their indices in the input; only texts are ever cut), and, when the call
    had inputs other than text, how many inputs of each modality it had (``(("text", 2), ("image", 3))``;
    empty for an all-text call)."""

    num_inputs: int = 0
    num_truncated: int = 0
    truncated_indices: tuple[int, ...] = field(default_factory=tuple)
    max_seq_length: int | None = None
    modality_counts: tuple[tuple[str, int], ...] = field(default_factory=tuple)


class TruncationWarning(UserWarning):
    """Some inputs were longer than the model's max_seq_length and were cut."""


#: ``fn(info, attribute)`` for every ``encode`` / ``predict`` call of this process, cut inputs or not
#: (``attribute``: ``last_encode_info`` for embedders, ``last_predict_info`` for rerankers). The CLI counts
#: cut inputs over a whole command with it (``sentencekit.cli_notes.truncation_notes``).
TRUNCATION_OBSERVERS: list[Callable[[EncodeInfo, str], None]] = []


def report_truncation(n: int, truncated: Sequence[int], max_seq_length: int | None, attribute: str,
                      stacklevel: int, *, modality_counts: tuple[tuple[str, int], ...] = ()) -> EncodeInfo:
    """The :class:`EncodeInfo` of a call, warning (once per call) when inputs were cut."""
    info = EncodeInfo(n, len(truncated), tuple(sorted(int(i) for i in truncated)), max_seq_length, modality_counts)
    for observe in list(TRUNCATION_OBSERVERS):
        observe(info, attribute)
    if truncated:
        first = ", ".join(str(i) for i in info.truncated_indices[:5])
        more = " ..." if len(truncated) > 5 else ""
        warnings.warn(
            f"{len(truncated)} of {n} inputs were longer than max_seq_length={max_seq_length} tokens "
            f"and were truncated (indices {first}{more}); their endings do not count. "
            "Split long texts into chunks, or raise max_seq_length if the model allows. "
            f"Details: model.{attribute}.",
            TruncationWarning,
            stacklevel=stacklevel,
        )
    return info


def as_input_list(inputs: Any, *, allow_pairs: bool = False, what: str = "sentences") -> tuple[list, bool]:
    """Return ``(list_of_inputs, was_single)`` after checking every element.

    A single string (or a single pair when ``allow_pairs``) counts as one input. ``None``, a non-string
    element or a nested list raise ``TypeError`` naming the offending index.

    Containers are read the way a sentence-transformers user passes them, with one single/batch rule:

    * ``encode``: a ``str`` (or a 0-d string array) is one text; a list, tuple, 1-D NumPy string array
      (dtype ``U`` or ``object``) or pandas ``Series`` of strings is a batch.
    * ``predict`` (``allow_pairs``): a list, tuple, 1-D array or ``Series`` of exactly two strings is ONE
      pair; a sequence of such pairs, or a 2-D string array of shape ``[n, 2]``, is a batch of ``n`` pairs.

    Raises ``TypeError`` for ``None``, bytes (and ``S``-dtype arrays), arrays of the wrong shape for the
    call, dicts other than a routed input, and any element that is not a string (or pair), naming its index.
    """
    expected_one = "a pair (text_a, text_b)" if allow_pairs else "a string"
    if inputs is None:
        raise TypeError(f"{what} is None: pass {expected_one} or a list of them.")
    # NumPy arrays and pandas Series become plain lists first, so they follow the list rule below.
    inputs = _plain_container(inputs, allow_pairs=allow_pairs, what=what)
    if isinstance(inputs, (bytes, bytearray)):
        raise TypeError(f"{what} is {type(inputs).__name__}: decode it to a str first (e.g. .decode('utf-8')).")
    if isinstance(inputs, str):
        if allow_pairs:
            raise TypeError(f"{what} is a single string; expected a pair (text_a, text_b) or a list of pairs.")
        return [inputs], True
    if allow_pairs and _is_pair(inputs):
        return [tuple(inputs)], True
    if isinstance(inputs, dict):
        if _is_routed(inputs):
            return [inputs], True
        raise TypeError(f"{what} is a dict with {len(inputs)} key(s); only a routed input {{'query': text}} (one key, "
                        f"a string value) is accepted as a dict. Pass {expected_one} or a list of them.")
    if not isinstance(inputs, Sequence):
        try:
            inputs = list(inputs)
        except TypeError:
            raise TypeError(
                f"{what} must be a string or a list of strings, got {type(inputs).__name__}."
            ) from None
    items = list(inputs)
    for i, item in enumerate(items):
        if isinstance(item, str):
            if allow_pairs:
                raise TypeError(f"{what}[{i}] is a string; expected a pair (text_a, text_b).")
            continue
        if allow_pairs and _is_pair(item):
            continue
        if _is_routed(item):
            continue  # a routed input ({"query": text}) for Router/Asym models
        kind = "None" if item is None else type(item).__name__
        if allow_pairs and isinstance(item, (list, tuple)):
            detail = (f"has {len(item)} elements" if len(item) != 2 else
                      f"holds {type(next(x for x in item if not isinstance(x, str))).__name__}, not two strings")
            raise TypeError(f"{what}[{i}] is a {kind} that {detail}; expected a pair (text_a, text_b) of strings.")
        expected = "a pair of strings" if allow_pairs else "a string"
        raise TypeError(f"{what}[{i}] is {kind}, expected {expected}"
                        + (" (nested lists are not accepted; flatten them first)."
                           if isinstance(item, (list, tuple)) else "."))
    return items, False


def _plain_container(inputs: Any, *, allow_pairs: bool, what: str) -> Any:
    """``inputs`` with a NumPy array or pandas Series turned into plain Python values (``str``, list);
    anything else unchanged. Checks an array's shape and dtype here, where the shape is still known."""
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind == "S":
            raise TypeError(f"{what} is a bytes array (dtype {inputs.dtype}): decode it to str first "
                            "(e.g. np.char.decode(arr, 'utf-8')).")
        if inputs.ndim == 0:
            return inputs.item()  # a 0-d string array is one text
        if inputs.ndim > (2 if allow_pairs else 1) or (allow_pairs and inputs.ndim == 2 and inputs.shape[1] != 2):
            accepted = ("a 1-D array of two strings (one pair) or a 2-D array of shape [n, 2] (n pairs)"
                        if allow_pairs else "a 1-D array of strings")
            raise TypeError(f"{what} is an array of shape {inputs.shape}; expected {accepted}.")
        # tolist() turns np.str_ into str and rows of a 2-D array into lists (pairs)
        return inputs.tolist()
    # pandas is optional: recognise a Series by its module instead of importing pandas here
    if type(inputs).__module__.startswith("pandas") and type(inputs).__name__ == "Series":
        return inputs.tolist()
    return inputs


def _is_routed(x: Any) -> bool:
    return isinstance(x, dict) and len(x) == 1 and isinstance(next(iter(x.values())), str)


def _is_pair(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(s, str) for s in x)


def text_length(item: Any) -> int:
    """Length used for sorting: characters for strings, summed for pairs, first value for dicts."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, dict):
        return len(next(iter(item.values()), ""))
    if isinstance(item, (tuple, list)):
        return sum(len(s) for s in item)
    return 1


def length_sorted_order(items: Sequence[Any], lengths: Sequence[int] | None = None) -> np.ndarray:
    """Indices that sort ``items`` longest first (stable, so ties keep input order)."""
    if lengths is None:
        lengths = [text_length(x) for x in items]
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def check_batch_args(batch_size: int, max_batch_tokens: int | None = None) -> None:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_batch_tokens is not None and (not isinstance(max_batch_tokens, (int, np.integer))
                                         or isinstance(max_batch_tokens, bool) or max_batch_tokens <= 0):
        raise ValueError(f"max_batch_tokens must be a positive integer or None, got {max_batch_tokens!r}")


def plan_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None,
                 max_batch_attention: int | None = None, *, least_padding: bool = False) -> list[np.ndarray]:
    """Indices of each batch: inputs sorted longest first (stable), cut so that a batch holds at most
    ``batch_size`` inputs, with ``max_batch_tokens`` at most that many padded tokens (rows x longest
    length), and with ``max_batch_attention`` at most that many attention scores per head
    (rows x longest length^2). An input longer than the budgets gets a batch of its own.

    The cut is greedy (each batch filled to its limits), or with ``least_padding`` (CPU engines, whose cost
    per batch is small against a batch's tokens) the one of least padding plus per-batch cost
    (:func:`_least_padding_batches`, for calls of up to :data:`LEAST_PADDING_LIMIT` inputs with a token budget).

    Raises ``ValueError`` for a ``batch_size`` or budget that is not a positive integer.

    >>> [len(b) for b in plan_batches([8192] * 4 + [100] * 4, 32, 32 * 512, 32 * 512 * 512)]
    [1, 1, 1, 1, 4]
    """
    check_batch_args(batch_size, max_batch_tokens)
    check_batch_args(batch_size, max_batch_attention)
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    if least_padding and max_batch_tokens is not None and 1 < len(order) <= LEAST_PADDING_LIMIT:
        return _least_padding_batches(order, lengths[order], batch_size, max_batch_tokens, max_batch_attention)
    batches, start, n = [], 0, len(order)
    while start < n:
        longest = max(1, int(lengths[order[start]]))
        size = batch_size
        if max_batch_tokens is not None:
            size = min(size, max_batch_tokens // longest)
        if max_batch_attention is not None:
            size = min(size, max_batch_attention // (longest * longest))
        size = max(1, size)
        batches.append(order[start : start + size])
        start += size
    return batches


#: calls of up to this many inputs are cut by :func:`_least_padding_batches` (a dynamic program, O(n x rows));
#: larger ones greedily, whose padding is already small there (length-sorted neighbours nearly tie)
LEAST_PADDING_LIMIT = 8192
#: what starting one more batch costs, in padded tokens: the runtime's fixed work per call (operator
#: launches, thread wake-ups) and smaller matrix products. Measured, not derived: see _least_padding_batches
BATCH_OVERHEAD_TOKENS = 32


def _least_padding_batches(order: np.ndarray, sorted_lengths: np.ndarray, batch_size: int, max_batch_tokens: int,
                           max_batch_attention: int | None) -> list[np.ndarray]:
    """The cut of the length-sorted inputs (``order``, longest first) into consecutive batches within the same
    limits as the greedy cut, at the least total cost: padded tokens (rows x the batch's longest length) plus
    :data:`BATCH_OVERHEAD_TOKENS` per batch. The greedy cut fills each batch to its limits, so a batch that
    starts at a long input ends among much shorter ones; that padding is what a server's calls of a few
    hundred mixed texts pay (`benchmarks/serve_load.py` requests: 232 texts a call padded 16.7% of their
    tokens greedily, one call of 9,044 texts 0.7%; least-padding 232-text calls: 3.6%, on all-MiniLM-L6-v2's
    CPU budget of 1,024 tokens; encoding those 232-text calls on OpenVINO ran 0.83x one call of all 9,044
    greedily and 0.90-0.93x cut this way, with :data:`BATCH_OVERHEAD_TOKENS` 16-64; 256 ran 0.89x). Planning
    costs ~7 us per input (NumPy, vectorised over the candidate starts: 0.07 s for 9,044 inputs)."""
    n = len(order)
    lengths = np.maximum(sorted_lengths, 1).astype(np.int64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start_of = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        first = max(0, end - batch_size)
        starts = np.arange(first, end)
        rows = end - starts
        longest = lengths[starts]  # sorted longest first: a batch's longest input is its first
        padded = rows * longest
        allowed = padded <= max_batch_tokens
        if max_batch_attention is not None:
            allowed &= padded * longest <= max_batch_attention
        allowed[-1] = True  # an input over the budgets gets a batch of its own
        cost = np.where(allowed, best[first:end] + padded + BATCH_OVERHEAD_TOKENS, np.inf)
        pick = int(np.argmin(cost))
        best[end], start_of[end] = cost[pick], first + pick
    cuts, end = [], n
    while end > 0:
        cuts.append((int(start_of[end]), end))
        end = int(start_of[end])
    return [order[a:b] for a, b in reversed(cuts)]


#: with a per-text token allowance, a batch may hold up to this many times ``batch_size`` short texts
MAX_GROWTH = 8

#: row length (tokens) up to which a token budget alone bounds a batch's memory; longer rows are also bounded
#: by attention (rows x length^2 <= token budget x this). The CPU allowances (``batch_tokens_per_text``) were
#: measured on texts of at most this length (all-MiniLM-L6-v2, max_seq_length 256-512).
ATTENTION_REFERENCE_LENGTH = 512


def resolve_batching(batch_size: int, max_batch_tokens: int | None, tokens_per_text: int | None,
                     *, lengths_are_tokens: bool = True) -> tuple[int, int | None, int | None]:
    """``(most texts, most padded tokens, most attention scores)`` per batch, the limits
    :func:`plan_batches` cuts by.

    The rule (one for every family and engine; sources: the memory of a transformer layer is linear in
    rows x length for its activations and, with eager or math attention, rows x heads x length^2 for
    its attention scores, as in Vaswani et al. 2017):

    * token budget ``T``: an explicit ``max_batch_tokens``; else a model's ``tokens_per_text`` allowance
      gives ``batch_size * tokens_per_text`` (up to ``MAX_GROWTH * batch_size`` texts: short texts share
      bigger batches, long texts get smaller ones); else (no allowance, e.g. on GPUs)
      ``batch_size * ATTENTION_REFERENCE_LENGTH``, which ``batch_size`` texts of up to 512 tokens never reach,
      so short texts keep exactly ``batch_size`` texts a batch.
    * attention budget ``T * ATTENTION_REFERENCE_LENGTH``: what ``T`` tokens cost in 512-token rows. Rows up
      to 512 tokens never reach it (rows x len^2 <= rows x len x 512); longer rows are cut by it, so
      a batch of 8k-token texts holds ``(512 / 8192)^2 = 1/256`` of the texts its token budget would allow
      (at least one): peak memory is set by the budget, not by ``batch_size``.

    ``lengths_are_tokens=False`` (lengths counted in characters, for a tokenizer that runs per batch) keeps
    the old rule: ``batch_size`` texts, cut only by an explicit ``max_batch_tokens``.

    >>> resolve_batching(32, None, 32), resolve_batching(32, 4096, 32), resolve_batching(32, None, None)
    ((256, 1024, 524288), (32, 4096, 2097152), (32, 16384, 8388608))
    """
    check_batch_args(batch_size, max_batch_tokens)
    if max_batch_tokens is not None:
        tokens: int | None = int(max_batch_tokens)
    elif tokens_per_text:
        batch_size, tokens = batch_size * MAX_GROWTH, batch_size * int(tokens_per_text)
    elif lengths_are_tokens:
        tokens = batch_size * ATTENTION_REFERENCE_LENGTH
    else:
        tokens = None
    attention = tokens * ATTENTION_REFERENCE_LENGTH if tokens is not None and lengths_are_tokens else None
    return batch_size, tokens, attention


def padding_waste(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> float:
    """Fraction of the computed (padded) tokens that are padding."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches if len(b))
    return 1.0 - float(lengths.sum()) / padded if padded else 0.0


def run_batches(
    engine: Any,
    tokenized: Any,
    *,
    batch_size: int,
    max_batch_tokens: int | None,
    show_progress_bar: bool | None,
    outputs: frozenset[str],
    prompt_length: int = 0,
    task: str | None = None,
    kwargs: dict[str, Any] | None = None,
    batch_step: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[dict[str, list[Any]], np.ndarray, list[int]]:
    """Run ``engine`` over ``tokenized`` (a :class:`~sentencekit.engines.protocol.Tokenized`) in batches
    sorted by token length and cut by :func:`resolve_batching` (texts, padded tokens, and attention for rows
    longer than ``ATTENTION_REFERENCE_LENGTH``).

    Returns ``(per-output lists of batch arrays, order, truncated)``: concatenating a list gives the rows in
    ``order`` (``order[k]`` is the input index of row ``k``; :func:`restore_order` puts them back), and
    ``truncated`` are the input indices the engine reported cut while running (engines that tokenize per
    batch). ``batch_step`` (a model family's per-batch step, e.g. the sparse family's top-k and compaction)
    maps each batch's named arrays before they are kept, so a family can shrink its outputs as they come."""
    if show_progress_bar is None:
        show_progress_bar = logging.getLogger("sentencekit").getEffectiveLevel() <= logging.INFO
    tokens_per_text = engine.batch_tokens_per_text if not tokenized.is_deferred else None
    count, budget, attention = resolve_batching(batch_size, max_batch_tokens, tokens_per_text,
                                                lengths_are_tokens=not tokenized.is_deferred)
    # CPU engines (those with a per-text token allowance) cut for least padding; GPUs pay more per batch
    batches: Any = plan_batches(tokenized.lengths, count, budget, attention,
                                least_padding=tokens_per_text is not None) if len(tokenized.lengths) else []
    if show_progress_bar:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="Batches", total=len(batches))
    parts: dict[str, list[Any]] = {}
    truncated: list[int] = []
    order = []
    for idx in batches:
        out = engine.run(tokenized, idx, outputs=outputs, prompt_length=prompt_length, task=task, kwargs=kwargs or {})
        cut = out.pop("truncated", None)
        if cut is not None:
            truncated.extend(int(idx[i]) for i in np.flatnonzero(np.asarray(cut, dtype=bool)))
        if batch_step is not None:
            out = batch_step(out)
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
        order.append(idx)
    return parts, (np.concatenate(order) if order else np.zeros(0, dtype=np.int64)), truncated


def restore_order(order: np.ndarray) -> np.ndarray:
    """The permutation that puts rows computed in ``order`` back in input order."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return inverse
