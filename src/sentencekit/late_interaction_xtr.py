"""XTR training scorers (Lee et al., "Rethinking the Role of Token Retrieval in Multi-Vector Retrieval", NeurIPS
2023): MaxSim as if each query token had *retrieved* its top-k tokens from an index of the batch's documents.
Names, arguments and results as sentence-transformers 6.2's ``multi_vector_encoder.scoring`` (``xtr_scores``,
``xtr_kd_scores``, ``xtr_scores_pairwise``, ``XTRScores``, ``XTRKDScores``); layouts as
:mod:`sentencekit.late_interaction_scoring` (queries ``[Q, q_tokens, dim]``, documents ``[Qd, N, d_tokens, dim]``,
optional masks; without them, all-zero token rows are padding).

For each query token, the ``top_k`` similarities over *all* real tokens of all ``Qd * N`` documents are kept
(the others count as not retrieved); per document and query token the best kept similarity is taken (0 when
that document had no token retrieved by it: XTR's imputation); these are summed over the real query tokens and
divided by ``Z``, the number of query tokens that retrieved at least one of the document's tokens (at least
1; eq. 5 of the paper, as sentence-transformers 6.2, not PyLate's count of positive maxima). A document without
any real token scores -1e9. The products run in the inputs' dtype (integers as float32), the sums in float32.

A pair's score depends on the whole batch (the top-k is global), so XTR scores training batches only: model
similarity and the retrieval evaluator refuse it.

>>> import torch
>>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])                      # one query, two tokens
>>> d = torch.tensor([[[[1.0, 0.0]], [[0.6, 0.8]]]])                  # two one-token documents
>>> xtr_scores(q, d, top_k=1)       # token 1 retrieves document 0 (1.0), token 2 document 1 (0.8)
tensor([[1.0000, 0.8000]])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sentencekit.late_interaction import DEFAULT_CHUNK_ELEMENTS
from sentencekit.late_interaction_scoring import as_tensor, to_tensor
from sentencekit.late_interaction_tensors import chunk_ranges, fill_empty_scores


def _float(tensor: Tensor) -> Tensor:
    return tensor if tensor.is_floating_point() else tensor.float()


def _similarities(queries: Tensor, documents: Tensor, documents_mask: Tensor, chunk_elements: int | None) -> Tensor:
    """``[Q, q_tokens, D, d_tokens]`` token similarities, masked document tokens at the dtype minimum (so they
    are never retrieved ahead of a real token, and a real negative similarity still wins a maximum). Computed
    over document chunks of ``chunk_elements`` (the transient product; the grid itself is whole)."""
    batch, q_tokens, dim = queries.shape
    count, d_tokens = documents_mask.shape
    flat = queries.reshape(batch * q_tokens, dim)
    budget = int(chunk_elements or DEFAULT_CHUNK_ELEMENTS)
    parts = []
    for start, end in chunk_ranges([d_tokens] * count, batch * q_tokens + dim, budget):
        sims = (flat @ documents[start:end].reshape(-1, dim).T).view(batch, q_tokens, end - start, d_tokens)
        keep = documents_mask[start:end].bool()[None, None]
        parts.append(sims.masked_fill(~keep, torch.finfo(sims.dtype).min))
    return torch.cat(parts, dim=2)


def xtr_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
               documents_mask: Any = None, top_k: int = 256, chunk_elements: int | None = None) -> Tensor:
    """XTR score of every query with every document of every group: ``[Q, Qd * N]`` float32, query-major
    (column ``j * N + n``; see the module docstring). Raises ``ValueError`` for a ``top_k`` that is not a
    positive integer or inputs of the wrong number of dimensions."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer (token matches kept per query token), got {top_k!r}.")
    queries = _float(as_tensor(queries_embeddings, "queries_embeddings", 3))
    documents = _float(as_tensor(documents_embeddings, "documents_embeddings", 4))
    groups, per_group, d_tokens, dim = documents.shape
    count = groups * per_group
    documents = documents.reshape(count, d_tokens, dim)
    d_mask = documents.any(dim=-1) if documents_mask is None else \
        as_tensor(documents_mask, "documents_mask", 3).reshape(count, d_tokens).bool()
    q_mask = queries.any(dim=-1) if queries_mask is None else as_tensor(queries_mask, "queries_mask", 2)

    sims = _similarities(queries, documents, d_mask, chunk_elements).flatten(2)  # [Q, q_tokens, D * d_tokens]
    values, positions = sims.topk(min(top_k, sims.shape[-1]), dim=-1, sorted=False)
    floor = torch.finfo(sims.dtype).min
    kept = torch.full_like(sims, floor).scatter(-1, positions, values)  # gradients reach the retrieved only
    # which documents each query token retrieved a real token of (padding retrieved when top_k exceeds the
    # real tokens goes to a spare bucket, index ``count``)
    owner = torch.where(d_mask.reshape(-1)[positions], positions // d_tokens, count)
    retrieved = torch.zeros(*positions.shape[:2], count + 1, dtype=torch.bool, device=positions.device)
    retrieved = retrieved.scatter(-1, owner, True)[..., :count]
    best = kept.view(*kept.shape[:2], count, d_tokens).max(dim=-1).values.float().masked_fill(~retrieved, 0.0)
    best = best * q_mask.to(best.dtype).unsqueeze(-1)
    retrieved = retrieved & q_mask.bool().unsqueeze(-1)
    scores = best.sum(dim=1) / retrieved.float().sum(dim=1).clamp(min=1)
    return fill_empty_scores(scores, ~d_mask.any(dim=-1))


def xtr_kd_scores(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                  documents_mask: Any = None, top_k: int = 256, chunk_elements: int | None = None) -> Tensor:
    """XTR score of each query with its own group's ``N`` documents: ``[B, N]`` float32 (the top-k still runs
    over every document of the batch)."""
    documents = as_tensor(documents_embeddings, "documents_embeddings", 4)
    scores = xtr_scores(queries_embeddings, documents, queries_mask, documents_mask, top_k, chunk_elements)
    batch, per_group = documents.shape[:2]
    rows = torch.arange(batch, device=scores.device)
    columns = rows.unsqueeze(1) * per_group + torch.arange(per_group, device=scores.device)
    return scores.gather(1, columns)


def xtr_scores_pairwise(queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                        documents_mask: Any = None, top_k: int = 256, chunk_elements: int | None = None) -> Tensor:
    """XTR score of query ``i`` with document ``i``: ``[B]`` float32 (documents ``[B, d_tokens, dim]`` or
    ``[B, 1, d_tokens, dim]``; the top-k runs over every document of the batch)."""
    documents = to_tensor(documents_embeddings)
    if documents.dim() == 3:
        documents = documents.unsqueeze(1)
    if documents_mask is not None and to_tensor(documents_mask).dim() == 2:
        documents_mask = to_tensor(documents_mask).unsqueeze(1)
    return xtr_kd_scores(queries_embeddings, documents, queries_mask, documents_mask, top_k,
                         chunk_elements).squeeze(-1)


class XTRScores:
    """:func:`xtr_scores` with ``top_k`` / ``chunk_elements`` bound: a ``similarity_fct`` for the multi-vector
    losses (``MultiVectorMultipleNegativesRankingLoss(model, similarity_fct=XTRScores(top_k=64))``)."""

    def __init__(self, top_k: int = 256, *, chunk_elements: int | None = None) -> None:
        self.top_k = top_k
        self.chunk_elements = chunk_elements

    def get_config_dict(self) -> dict[str, int | None]:
        return {"top_k": self.top_k, "chunk_elements": self.chunk_elements}

    def __call__(self, queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                 documents_mask: Any = None) -> Tensor:
        return xtr_scores(queries_embeddings, documents_embeddings, queries_mask, documents_mask, self.top_k,
                          self.chunk_elements)


class XTRKDScores(XTRScores):
    """:func:`xtr_kd_scores` with ``top_k`` / ``chunk_elements`` bound (``[B, N]``): a ``similarity_fct`` for
    ``MultiVectorDistillKLDivLoss``."""

    def __call__(self, queries_embeddings: Any, documents_embeddings: Any, queries_mask: Any = None,
                 documents_mask: Any = None) -> Tensor:
        return xtr_kd_scores(queries_embeddings, documents_embeddings, queries_mask, documents_mask, self.top_k,
                             self.chunk_elements)


def is_xtr(fn: Any) -> bool:
    """Whether ``fn`` scores with XTR (one of the functions above, an ``XTRScores``, or a ``functools.partial``
    / ``torch.compile`` wrapper of one): callers whose scores must not depend on the batch refuse it."""
    target = getattr(fn, "func", fn)  # functools.partial
    target = getattr(target, "_torchdynamo_orig_callable", target)  # torch.compile
    return isinstance(target, XTRScores) or target in (xtr_scores, xtr_kd_scores, xtr_scores_pairwise)


__all__ = ["xtr_scores", "xtr_kd_scores", "xtr_scores_pairwise", "XTRScores", "XTRKDScores", "is_xtr"]
