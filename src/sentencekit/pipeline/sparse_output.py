"""The sparse family's last step of the one encode pipeline (:func:`sentencekit.pipeline.encode.run_pipeline`):

per batch, as rows come from the engine: keep each row's ``max_active_dims`` largest weights (by absolute
value), make the rows sparse, move them to the CPU when asked; after all batches: restore input order and
stack (or list) them, as sentence-transformers 6.2's ``SparseEncoder.encode`` returns them.

Engine-neutral by construction: a batch's ``sentence_embedding`` may be a torch tensor (torch engine:
results are torch tensors, sparse COO by default) or a NumPy array (a torch-free engine: results are
``scipy.sparse.csr_matrix`` or NumPy arrays, and torch is never imported): the ONNX Runtime SPLADE engine
and the NumPy ``SparseStaticEmbedding`` engine output the pooled ``sentence_embedding`` rows.

>>> import numpy as np
>>> select_max_active_dims(np.array([[0.5, -3.0, 1.0, 0.0]], dtype=np.float32), 2).tolist()
[[0.0, -3.0, 1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sentencekit.pipeline.postprocess import is_tensor


def check_max_active_dims(value: Any) -> int | None:
    """``value`` if it is ``None`` or a positive int; else ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"max_active_dims must be a positive integer or None, got {value!r}")
    return int(value)


def select_max_active_dims(rows: Any, k: int | None) -> Any:
    """``rows`` ``[n, dim]`` (tensor or NumPy array, dense) with all but each row's ``k`` largest-magnitude
    entries set to 0 (a new array; ``k=None`` or ``k >= dim``: ``rows`` itself). Ties at the cut keep an
    arbitrary one of the tied entries, as ``torch.topk`` does."""
    if k is None or rows.shape[-1] <= k:
        return rows
    if is_tensor(rows):
        import torch

        keep = torch.topk(rows.abs(), k, dim=-1).indices
        return torch.zeros_like(rows).scatter(-1, keep, rows.gather(-1, keep))
    keep = np.argpartition(-np.abs(rows), k - 1, axis=-1)[..., :k]
    out = np.zeros_like(rows)
    np.put_along_axis(out, keep, np.take_along_axis(rows, keep, axis=-1), axis=-1)
    return out


def sparse_batch_step(*, max_active_dims: int | None, convert_to_sparse_tensor: bool,
                      save_to_cpu: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The per-batch step (``run_batches(batch_step=...)``): top-k, then sparse (torch COO / SciPy CSR), then
    CPU. Dense ``[b, vocab]`` rows never pile up: only the compact batch is kept."""

    def step(out: dict[str, Any]) -> dict[str, Any]:
        rows = select_max_active_dims(out["sentence_embedding"], max_active_dims)
        if is_tensor(rows):
            if convert_to_sparse_tensor:
                rows = rows.to_sparse()
            if save_to_cpu:
                rows = rows.cpu()
        elif convert_to_sparse_tensor:
            from scipy import sparse

            rows = sparse.csr_matrix(rows)
        return {**out, "sentence_embedding": rows}

    return step


def gather_sparse_rows(parts: list[Any], inverse: np.ndarray, *, convert_to_tensor: bool,
                       convert_to_sparse_tensor: bool, device: Any, torch_output: bool = True) -> Any:
    """The batches' rows (from :func:`sparse_batch_step`) in input order: one ``[N, dim]`` tensor / matrix
    (``convert_to_tensor``) or a list of 1-D rows. No rows: ``torch.tensor([])`` (sparse when asked, on
    ``device``) or ``[]``, as sentence-transformers returns; ``torch_output=False`` (a torch-free engine):
    an empty float32 NumPy array instead of the tensor."""
    if not parts:
        if not convert_to_tensor:
            return []
        if not torch_output:
            return np.zeros((0,), dtype=np.float32)
        import torch

        empty = torch.tensor([], device=device)
        return empty.to_sparse() if convert_to_sparse_tensor else empty
    first = parts[0]
    if is_tensor(first):
        import torch

        stacked = torch.cat(parts).index_select(0, torch.as_tensor(inverse, device=first.device))
        return stacked if convert_to_tensor else list(stacked.unbind(0))
    if convert_to_sparse_tensor:
        from scipy import sparse

        stacked = sparse.vstack(parts, format="csr")[inverse]
        return stacked if convert_to_tensor else [stacked[i] for i in range(stacked.shape[0])]
    stacked = np.concatenate(parts)[inverse]
    return stacked if convert_to_tensor else list(stacked)


__all__ = ["check_max_active_dims", "select_max_active_dims", "sparse_batch_step", "gather_sparse_rows"]
