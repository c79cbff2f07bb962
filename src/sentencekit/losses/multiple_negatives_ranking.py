"""MultipleNegativesRankingLoss: InfoNCE with in-batch negatives, with sentence-transformers 6.2's interaction
directions, partition modes and hardness weighting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, function_name
from sentencekit.losses._citations import MNRL_CITATION
from sentencekit.similarity import cos_sim

logger = logging.getLogger(__name__)

DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
PARTITION_MODES = ("joint", "per_direction")
HARDNESS_MODES = (None, "in_batch_negatives", "hard_negatives", "all_negatives")


def ranking_logits(queries: Tensor, documents: Sequence[Tensor], scale: float,
                   similarity_fct: Callable[[Tensor, Tensor], Tensor], directions: Sequence[str] = ("query_to_doc",),
                   hardness_mode: str | None = None, hardness_strength: float = 0.0) -> dict[str, Tensor]:
    """The scaled score matrices of each direction, keyed by direction, for ``queries`` ``[n, dim]`` and
    document columns (positives first, then hard negatives; each ``[n, dim]``). Row ``i`` is query ``i``
    (``query_to_*``) or positive ``i`` (``doc_to_*``):

    - ``query_to_doc`` ``[n, n * columns]``: query ``i`` against every document; its positive is column ``i``.
    - ``query_to_query`` ``[n, n]``: against the other queries (itself masked with ``-inf``).
    - ``doc_to_query`` ``[n, n]``: positive ``i`` against every query.
    - ``doc_to_doc`` ``[n, n * columns]``: positive ``i`` against every document but query ``i``'s own.

    Hardness weighting (Lan et al. 2025, "LLaVE", eq. 5, as sentence-transformers 6.2) adds
    ``hardness_strength * sim`` (unscaled, no gradient) to the ``query_to_doc`` logits of the other queries'
    documents (``in_batch_negatives``), of the query's own hard negatives (``hard_negatives``), or of every
    document but the positive (``all_negatives``): harder negatives weigh more in the softmax."""
    n = len(queries)
    candidates = torch.cat(list(documents))
    positives = documents[0]
    own = torch.eye(n, dtype=torch.bool, device=queries.device)
    own_documents = own.repeat(1, len(documents))  # [i, j]: document j belongs to query i
    query_to_doc = similarity_fct(queries, candidates)
    logits = {"query_to_doc": query_to_doc * scale}
    if "query_to_query" in directions:
        logits["query_to_query"] = similarity_fct(queries, queries).masked_fill(own, -torch.inf) * scale
    if "doc_to_query" in directions:
        logits["doc_to_query"] = similarity_fct(queries, positives).T * scale
    if "doc_to_doc" in directions:
        logits["doc_to_doc"] = similarity_fct(candidates, positives).T.masked_fill(own_documents, -torch.inf) * scale
    if hardness_mode is not None and hardness_strength > 0:
        in_positive_block = torch.zeros_like(own_documents)
        in_positive_block[:, :n] = True
        weighted = {"in_batch_negatives": ~own_documents,
                    "hard_negatives": own_documents & ~in_positive_block,
                    "all_negatives": ~(own_documents & in_positive_block)}[hardness_mode]
        penalty = hardness_strength * query_to_doc.detach() * weighted.to(query_to_doc.dtype)
        logits["query_to_doc"] = logits["query_to_doc"] + penalty
    return logits


def info_nce(logits: dict[str, Tensor], partition_mode: str = "joint") -> Tensor:
    """``mean_i(log Z_i - positive_i)`` from :func:`ranking_logits`; the positive of row ``i`` is
    ``query_to_doc[i, i]``. ``joint``: one softmax over all directions' logits (``log Z`` the logsumexp of
    the concatenated rows); ``per_direction``: the mean of each direction's ``log Z``. With ``query_to_doc``
    alone this is the cross-entropy of InfoNCE (van den Oord et al. 2018)."""
    query_to_doc = logits["query_to_doc"]
    positive = query_to_doc.diagonal()
    if partition_mode == "joint":
        log_z = torch.logsumexp(torch.cat(list(logits.values()), dim=1), dim=1)
    else:
        log_z = torch.stack([torch.logsumexp(m, dim=1) for m in logits.values()]).mean(dim=0)
    return (log_z - positive).mean()


class MultipleNegativesRankingLoss(EmbeddingLoss):
    """(anchor, positive[, negative_1, ...]) columns, no labels. For anchor ``i`` the positive ``i`` must score
    highest among all positives and negatives of the batch (InfoNCE, in-batch negatives). ``scale`` is
    1 / temperature; with ``similarity_fct=dot_score`` use a smaller scale.

    sentence-transformers 6.2's options (see :func:`ranking_logits` and :func:`info_nce`): ``directions``
    adds ``query_to_query``, ``doc_to_query`` (the symmetric loss) and ``doc_to_doc`` terms to the required
    ``query_to_doc``; ``partition_mode`` normalises them in one softmax (``joint``) or one per direction,
    averaged (``per_direction``, only with ``query_to_doc`` / ``doc_to_query``: the others never contain the
    positive); ``hardness_mode`` / ``hardness_strength`` up-weight hard negatives. ``gather_across_devices``
    is accepted and changes nothing in a single process; in a multi-process run it raises
    ``NotImplementedError`` (the all-gather is not implemented). Raises ``ValueError`` for a non-positive
    ``scale``, unknown or incompatible directions / modes, and a negative ``hardness_strength``.

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import MultipleNegativesRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = MultipleNegativesRankingLoss(model)                                  # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = MNRL_CITATION

    def __init__(self, model: nn.Module, scale: float = 20.0,
                 similarity_fct: Callable[[Tensor, Tensor], Tensor] = cos_sim, gather_across_devices: bool = False,
                 directions: Sequence[str] = ("query_to_doc",), partition_mode: str = "joint",
                 hardness_mode: str | None = None, hardness_strength: float = 0.0) -> None:
        super().__init__(model)
        if not scale > 0:
            raise ValueError(f"scale must be positive (it is 1 / temperature), got {scale!r}")
        directions = tuple(directions)
        unknown = set(directions) - set(DIRECTIONS)
        if not directions or unknown or "query_to_doc" not in directions:
            raise ValueError(f"directions must include 'query_to_doc' (it holds the positive pair), from {DIRECTIONS}; "
                             f"got {directions!r}")
        if partition_mode not in PARTITION_MODES:
            raise ValueError(f"partition_mode must be one of {PARTITION_MODES}, got {partition_mode!r}")
        if partition_mode == "per_direction" and {"query_to_query", "doc_to_doc"} & set(directions):
            raise ValueError("partition_mode='per_direction' needs the positive pair in every direction's softmax; "
                             "'query_to_query' and 'doc_to_doc' never contain it. Use partition_mode='joint'.")
        if hardness_mode not in HARDNESS_MODES:
            raise ValueError(f"hardness_mode must be one of {HARDNESS_MODES}, got {hardness_mode!r}")
        if hardness_strength < 0:
            raise ValueError(f"hardness_strength must be non-negative, got {hardness_strength!r}")
        if hardness_mode is not None and hardness_strength == 0:
            logger.warning("hardness_mode=%r with hardness_strength=0.0 changes nothing: set a positive strength.",
                           hardness_mode)
        self.scale = scale
        self.similarity_fct = similarity_fct
        self.gather_across_devices = gather_across_devices
        self.directions = directions
        self.partition_mode = partition_mode
        self.hardness_mode = hardness_mode
        self.hardness_strength = hardness_strength

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        check_columns(self, embeddings, (2, None))
        if self.gather_across_devices and torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise NotImplementedError(f"{type(self).__name__}(gather_across_devices=True) is not implemented for "
                                      "multi-process training: set gather_across_devices=False (in-batch negatives "
                                      "from this process only).")
        logits = ranking_logits(embeddings[0], embeddings[1:], self.scale, self.similarity_fct, self.directions,
                                self.hardness_mode, self.hardness_strength)
        return info_nce(logits, self.partition_mode)

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"scale": self.scale, "similarity_fct": function_name(self.similarity_fct)}
        # sentence-transformers 6.2's options, when set (the default config stays the classic two keys)
        for key, default in (("gather_across_devices", False), ("directions", ("query_to_doc",)),
                             ("partition_mode", "joint"), ("hardness_mode", None), ("hardness_strength", 0.0)):
            if getattr(self, key) != default:
                config[key] = getattr(self, key)
        return config
