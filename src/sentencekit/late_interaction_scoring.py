"""Training scorers of multi-vector (ColBERT) losses: MaxSim between a batch of queries and, per query, a group of
documents (its positive and negatives), with the names, arguments and layouts of sentence-transformers 6.2's
``sentence_transformers.multi_vector_encoder.scoring`` (ColBERT: Khattab & Zaharia, SIGIR 2020). The MaxSim
itself is :mod:`sentencekit.late_interaction_tensors`' (masks, empty documents, float32 sums, chunking); XTR's
scorers are in :mod:`sentencekit.late_interaction_xtr`.

Shapes: queries ``[Q, q_tokens, dim]`` with an optional ``[Q, q_tokens]`` mask; documents stacked per query
``[Qd, N, d_tokens, dim]`` with an optional ``[Qd, N, d_tokens]`` mask (without masks, all-zero token rows are
padding). Scores are float32 and differentiable.

- :func:`colbert_scores` ``[Q, Qd * N]``, query-major: column ``j * N + n`` is group ``j``'s ``n``-th document,
  so with ``Q == Qd`` query ``i``'s positive is column ``i * N`` (what in-batch-negative losses need);
- :func:`colbert_kd_scores` ``[Q, N]``: each query against its own group (distillation);
- :func:`colbert_scores_pairwise` ``[B]``: query ``i`` against document ``i`` (documents ``[B, d_tokens, dim]``);
- ``mean_colbert_*``: the same divided by each query's number of real tokens (MeanMaxSim; ``length_normalize``
  defaults to True there).

``chunk_elements`` is MaxSim's element budget per chunk (default 1e8); chunking changes memory, not scores.

>>> import torch
>>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])                      # one query, two tokens
>>> d = torch.tensor([[[[1.0, 0.0]], [[0.6, 0.8]]]])                  # its group: two one-token documents
>>> colbert_scores(q, d)
tensor([[1.0000, 1.4000]])
>>> mean_colbert_kd_scores(q, d)
tensor([[0.5000, 0.7000]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sentencekit.late_interaction_tensors import maxsim, maxsim_pairwise


def to_tensor(value: Any) -> Tensor:
    """``value`` (a tensor, or anything NumPy reads as one array) as a tensor."""
    return value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))


def as_tensor(value: Any, name: str, dims: int) -> Tensor:
    """``value`` as a tensor of ``dims`` dimensions; ``ValueError`` naming ``name`` otherwise."""
    tensor = to_tensor(value)
    if tensor.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimensions, got shape {tuple(tensor.shape)}.")
    return tensor


def _group_mask(documents_mask: Any, group: int) -> Tensor | None:
    return None if documents_mask is None else as_tensor(documents_mask, "documents_mask", 3)[:, group]


def colbert_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                   documents_mask: Any = None, chunk_elements: int | None = None,
                   length_normalize: bool = False) -> Tensor:
    """MaxSim of every query with every document of every group: ``[Q, Qd * N]`` float32, query-major (see the
    module docstring). Raises ``ValueError`` for documents that are not ``[Qd, N, d_tokens, dim]``."""
    documents = as_tensor(documents_embeddings, "documents_embeddings", 4)
    groups, per_group = documents.shape[:2]
    scores = [maxsim(queries_embeddings, documents[:, n], a_mask=queries_mask, b_mask=_group_mask(documents_mask, n),
                     chunk_elements=chunk_elements, length_normalize=length_normalize) for n in range(per_group)]
    return torch.stack(scores, dim=2).reshape(-1, groups * per_group)  # [Q, Qd, N] -> column j * N + n


def colbert_kd_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                      documents_mask: Any = None, chunk_elements: int | None = None,
                      length_normalize: bool = False) -> Tensor:
    """MaxSim of each query with the ``N`` documents of its own group: ``[B, N]`` float32 (queries ``[B, q_tokens,
    dim]``, documents ``[B, N, d_tokens, dim]``), e.g. against a teacher's scores. Raises ``ValueError`` for
    documents that are not 4-D or groups that do not match the queries."""
    documents = as_tensor(documents_embeddings, "documents_embeddings", 4)
    scores = [maxsim_pairwise(queries_embeddings, documents[:, n], a_mask=queries_mask,
                              b_mask=_group_mask(documents_mask, n), chunk_elements=chunk_elements,
                              length_normalize=length_normalize) for n in range(documents.shape[1])]
    return torch.stack(scores, dim=1)


def colbert_scores_pairwise(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                            documents_mask: Any = None, chunk_elements: int | None = None,
                            length_normalize: bool = False) -> Tensor:
    """MaxSim of query ``i`` with document ``i``: ``[B]`` float32 (documents ``[B, d_tokens, dim]``; any input
    :func:`~sentencekit.late_interaction_tensors.maxsim_pairwise` takes)."""
    return maxsim_pairwise(queries_embeddings, documents_embeddings, a_mask=queries_mask, b_mask=documents_mask,
                           chunk_elements=chunk_elements, length_normalize=length_normalize)


def mean_colbert_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                        documents_mask: Any = None, chunk_elements: int | None = None,
                        length_normalize: bool = True) -> Tensor:
    """:func:`colbert_scores` divided by each query's number of real tokens (MeanMaxSim); pair it with
    ``model.similarity_fn_name = "meanmaxsim"`` so evaluation scores as training did."""
    return colbert_scores(queries_embeddings, documents_embeddings, queries_mask, documents_mask, chunk_elements,
                          length_normalize)


def mean_colbert_kd_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                           documents_mask: Any = None, chunk_elements: int | None = None,
                           length_normalize: bool = True) -> Tensor:
    """:func:`colbert_kd_scores` divided by each query's number of real tokens (MeanMaxSim)."""
    return colbert_kd_scores(queries_embeddings, documents_embeddings, queries_mask, documents_mask, chunk_elements,
                             length_normalize)


def mean_colbert_scores_pairwise(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                                 documents_mask: Any = None, chunk_elements: int | None = None,
                                 length_normalize: bool = True) -> Tensor:
    """:func:`colbert_scores_pairwise` divided by each query's number of real tokens (MeanMaxSim)."""
    return colbert_scores_pairwise(queries_embeddings, documents_embeddings, queries_mask, documents_mask,
                                   chunk_elements, length_normalize)


__all__ = ["colbert_scores", "colbert_kd_scores", "colbert_scores_pairwise", "mean_colbert_scores",
           "mean_colbert_kd_scores", "mean_colbert_scores_pairwise"]
