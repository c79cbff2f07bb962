"""The guard of the sparse losses that only make sense inside a wrapper (``SpladeLoss`` / ``CSRLoss``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor


class InnerLossOnly:
    """Mixin (put it first among the bases) whose ``forward`` raises ``AttributeError``, as
    sentence-transformers' sparse ranking losses do: trained alone, nothing keeps a SPLADE model sparse (no
    FLOPS regulariser) or a CSR model faithful to its backbone (no reconstruction loss). The wrapper calls
    ``compute_loss_from_embeddings`` instead."""

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        raise AttributeError(f"{type(self).__name__} should not be used alone: wrap it, e.g. "
                             f"SpladeLoss(model, loss={type(self).__name__}(model), document_regularizer_weight=3e-5, "
                             "query_regularizer_weight=5e-5), or CSRLoss(model, loss=...) for a SparseAutoEncoder.")
