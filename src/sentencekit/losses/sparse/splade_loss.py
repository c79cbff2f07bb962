"""``SpladeLoss``: a ranking loss on SPLADE embeddings plus FLOPS regularisation of the queries and the
documents. Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking" (SIGIR 2021)
and "From Distillation to Hard Negative Sampling" (SIGIR 2022, arXiv:2205.04733); arguments and output as
sentence-transformers 6.2 (``sentence_transformers.sparse_encoder.losses.SpladeLoss``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss
from sentencekit.losses.sparse.flops import FlopsLoss

logger = logging.getLogger(__name__)


class SpladeLoss(EmbeddingLoss):
    """Wrap a sparse ranking loss (``SparseMultipleNegativesRankingLoss``, ``SparseMarginMSELoss``, ...) and
    regularise with FLOPS (:func:`~sentencekit.losses.sparse.flops.flops`). Columns: the inner loss's; the
    first column is the query, the others documents.

    ``forward`` returns a dict of 0-d tensors (the trainer trains on their sum and logs each):
    ``base_loss`` (the inner loss's ``compute_loss_from_embeddings``; a dict result is merged in instead),
    ``document_regularizer_loss`` = ``document_regularizer_weight * FLOPS(cat(columns[1:]))`` and, when
    ``query_regularizer_weight`` is not None, ``query_regularizer_loss`` =
    ``query_regularizer_weight * FLOPS(columns[0])``. With ``use_document_regularizer_only`` every column
    counts as a document (symmetric data) and no query term is added. ``*_regularizer`` replace the default
    :class:`FlopsLoss` (any module with ``compute_loss_from_embeddings(embeddings [n, dim])``);
    ``*_regularizer_threshold`` skip rows with at most that many active dimensions in the default one.
    The trainer ramps the weights up with ``SpladeRegularizerWeightSchedulerCallback`` (added for you).

    Raises ``ValueError`` when ``loss`` has no ``compute_loss_from_embeddings``.

    >>> from sentencekit import SparseEncoder
    >>> from sentencekit.losses.sparse import SparseMultipleNegativesRankingLoss, SpladeLoss
    >>> model = SparseEncoder("naver/splade-cocondenser-ensembledistil")       # doctest: +SKIP
    >>> loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model),
    ...                   document_regularizer_weight=3e-5, query_regularizer_weight=5e-5)  # doctest: +SKIP
    """

    citation = """
@misc{formal2022distillationhardnegativesampling,
    title={From Distillation to Hard Negative Sampling: Making Sparse Neural IR Models More Effective},
    author={Thibault Formal and Carlos Lassance and Benjamin Piwowarski and Stéphane Clinchant},
    year={2022},
    eprint={2205.04733},
    archivePrefix={arXiv},
    primaryClass={cs.IR},
    url={https://arxiv.org/abs/2205.04733},
}
"""

    def __init__(
        self,
        model: Any,
        loss: nn.Module,
        document_regularizer_weight: float,
        query_regularizer_weight: float | None = None,
        document_regularizer: nn.Module | None = None,
        query_regularizer: nn.Module | None = None,
        document_regularizer_threshold: int | None = None,
        query_regularizer_threshold: int | None = None,
        use_document_regularizer_only: bool = False,
    ) -> None:
        super().__init__(model)
        if not callable(getattr(loss, "compute_loss_from_embeddings", None)):
            raise ValueError(f"SpladeLoss needs an inner loss with compute_loss_from_embeddings(embeddings, labels); "
                             f"{type(loss).__name__} has none.")
        self.loss = loss
        self.document_regularizer_weight = document_regularizer_weight
        self.query_regularizer_weight = query_regularizer_weight
        self.use_document_regularizer_only = use_document_regularizer_only
        self.document_regularizer = (document_regularizer if document_regularizer is not None
                                     else FlopsLoss(model, threshold=document_regularizer_threshold))
        self.query_regularizer = None
        if query_regularizer is not None:
            self.query_regularizer = query_regularizer
        elif not use_document_regularizer_only:
            self.query_regularizer = FlopsLoss(model, threshold=query_regularizer_threshold)
        if use_document_regularizer_only and query_regularizer_weight is not None:
            logger.warning("use_document_regularizer_only=True regularises every column as a document: "
                           "query_regularizer_weight is ignored.")
            self.query_regularizer_weight = None
        elif query_regularizer_weight is None and not use_document_regularizer_only:
            logger.warning("query_regularizer_weight is None: queries are not regularised (fine for inference-free "
                           "models, whose queries skip the MLM).")

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None
                                     ) -> dict[str, Tensor]:
        """The loss dict (see the class) from the column embeddings (each ``[batch, dim]``)."""
        losses: dict[str, Tensor] = {}
        base = self.loss.compute_loss_from_embeddings(embeddings, labels)
        if isinstance(base, dict):
            losses.update(base)
        else:
            losses["base_loss"] = base
        documents = embeddings if self.use_document_regularizer_only else embeddings[1:]
        if documents:
            losses["document_regularizer_loss"] = (
                self.document_regularizer.compute_loss_from_embeddings(torch.cat(documents))
                * self.document_regularizer_weight)
        if self.query_regularizer_weight is not None and self.query_regularizer is not None:
            losses["query_regularizer_loss"] = (
                self.query_regularizer.compute_loss_from_embeddings(embeddings[0]) * self.query_regularizer_weight)
        return losses

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None
                ) -> dict[str, Tensor]:  # type: ignore[override]
        return self.compute_loss_from_embeddings(self.embed(sentence_features), labels)

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"loss": type(self.loss).__name__,
                                  "document_regularizer_weight": self.document_regularizer_weight}
        if self.query_regularizer_weight is not None:
            config["query_regularizer_weight"] = self.query_regularizer_weight
        for side in ("document", "query"):
            regularizer = getattr(self, f"{side}_regularizer")
            if regularizer is None:
                continue
            if not isinstance(regularizer, FlopsLoss):
                config[f"{side}_regularizer"] = type(regularizer).__name__
            elif regularizer.threshold is not None:
                config[f"{side}_regularizer_threshold"] = regularizer.threshold
        if self.use_document_regularizer_only:
            config["use_document_regularizer_only"] = True
        return config
