"""Batching shared by every model family: validate inputs, sort by length so each batch pads little,
run batches (with an optional progress bar) and put results back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def as_input_list(inputs: Any, *, allow_pairs: bool = False, what: str = "sentences") -> tuple[list, bool]:
    """Return ``(list_of_inputs, was_single)`` after checking every element.

    A single string (or a single pair when ``allow_pairs``) counts as one input. ``None``, a non-string
    element or a nested list raise ``TypeError`` naming the offending index.
    """
    if inputs is None:
        raise TypeError(f"{what} is None: pass a string or a list of strings.")
    if isinstance(inputs, str):
        if allow_pairs:
            raise TypeError(f"{what} is a single string; expected a pair (text_a, text_b) or a list of pairs.")
        return [inputs], True
    if allow_pairs and _is_pair(inputs):
        return [tuple(inputs)], True
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    if isinstance(inputs, dict):
        return [inputs], True
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
        if isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), str):
            continue  # a routed input ({"query": text}) for Router/Asym models
        kind = "None" if item is None else type(item).__name__
        expected = "a pair of strings" if allow_pairs else "a string"
        raise TypeError(f"{what}[{i}] is {kind}, expected {expected}"
                        + (" (nested lists are not accepted; flatten them first)."
                           if isinstance(item, (list, tuple)) else "."))
    return items, False


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


def run_sorted_batches(
    items: Sequence[Any],
    fn: Callable[[list[Any], np.ndarray], list[T]],
    batch_size: int,
    *,
    show_progress_bar: bool = False,
    desc: str = "Batches",
) -> list[T]:
    """Run ``fn(batch, batch_indices)`` over length-sorted batches; return one result per item, in the
    original order. ``fn`` returns one result per element of its batch."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = length_sorted_order(items)
    results: list[Any] = [None] * len(items)
    starts = range(0, len(items), batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, total=len(starts))
    for start in starts:
        idx = order[start : start + batch_size]
        out = fn([items[i] for i in idx], idx)
        if len(out) != len(idx):
            raise RuntimeError(f"batch function returned {len(out)} results for {len(idx)} inputs")
        for i, r in zip(idx, out):
            results[i] = r
    return results
