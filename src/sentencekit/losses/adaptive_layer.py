"""AdaptiveLayerLoss: train the earlier transformer layers to give usable embeddings too (early exit)."""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentencekit._warnings import external_stacklevel
from sentencekit.losses._base import hold_model
from sentencekit.losses._gradcache import CachedEmbeddingLoss
from sentencekit.modules import Transformer


class AdaptiveLayerLoss(nn.Module):
    """Wraps another loss and applies it to the embeddings of the last layer and of earlier layers.

    Each column goes through the transformer once with ``output_hidden_states=True``; the modules after it
    (pooling, dense, normalize) turn a layer's hidden states into that layer's embeddings. The loss is
    ``last_layer_weight * loss(last layer)`` plus, for ``n_layers_per_step`` sampled earlier layers (all with
    -1), ``loss(layer i) / (1 + i) / n_sampled * prior_layers_weight`` and, with ``kl_temperature > 0``,
    ``KL(softmax(last / T) || softmax(layer i / T)) * T * kl_div_weight`` over the embedding dimensions,
    as in sentence-transformers (``i`` counts from 0 = first layer).

    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import AdaptiveLayerLoss, MultipleNegativesRankingLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = AdaptiveLayerLoss(model, MultipleNegativesRankingLoss(model))        # doctest: +SKIP
    >>> columns = [["How do I get a refund?", "Is it sunny?"], ["Refunds take 5 days.", "Paris is mild today."]]
    >>> loss([model.tokenize(texts) for texts in columns], None).backward()         # doctest: +SKIP
    """

    citation = """
@misc{li20242d,
    title={2D Matryoshka Sentence Embeddings},
    author={Xianming Li and Zongxi Li and Jing Li and Haoran Xie and Qing Li},
    year={2024},
    eprint={2402.14776},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}
"""

    def __init__(self, model: nn.Module, loss: nn.Module, n_layers_per_step: int = 1, last_layer_weight: float = 1.0,
                 prior_layers_weight: float = 1.0, kl_div_weight: float = 1.0, kl_temperature: float = 0.3) -> None:
        super().__init__()
        if not isinstance(model[0], Transformer) or model[0].transformer_task != "feature-extraction":
            raise ValueError("AdaptiveLayerLoss needs a model whose first module is a (feature-extraction) "
                             f"Transformer, got {type(model[0]).__name__}.")
        if not hasattr(loss, "compute_loss_from_embeddings"):
            raise TypeError(f"AdaptiveLayerLoss cannot wrap {type(loss).__name__}: it has no "
                            "compute_loss_from_embeddings().")
        if isinstance(loss, CachedEmbeddingLoss):
            warnings.warn(f"AdaptiveLayerLoss computes {type(loss).__name__} without gradient caching: the values "
                          "and gradients are right, but memory grows with the batch as for the uncached loss.",
                          stacklevel=external_stacklevel())
        hold_model(self, model)
        self.loss = loss
        self.n_layers_per_step = n_layers_per_step
        self.last_layer_weight = last_layer_weight
        self.prior_layers_weight = prior_layers_weight
        self.kl_div_weight = kl_div_weight
        self.kl_temperature = kl_temperature

    def _head(self, features: dict[str, Any], token_embeddings: Tensor) -> Tensor:
        """Embeddings from one layer's hidden states: the modules after the transformer, applied to them."""
        features = {**features, "token_embeddings": token_embeddings}
        for module in list(self.model)[1:]:
            features = module(features)
        return features["sentence_embedding"]

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None) -> Tensor:
        transformer = self.model[0]
        outputs = []
        for features in sentence_features:
            out = transformer(dict(features), output_hidden_states=True)
            hidden_states = out.pop("all_layer_embeddings")  # (embedding output, layer 1, ..., layer N)
            outputs.append((out, hidden_states))
        num_layers = len(outputs[0][1]) - 1

        final = [self._head(out, out["token_embeddings"]) for out, _ in outputs]
        loss = self.loss.compute_loss_from_embeddings(final, labels) * self.last_layer_weight
        if self.kl_temperature > 0:
            final_probs = F.softmax(torch.cat(final) / self.kl_temperature, dim=-1)

        # prior layers 1 .. N-1, indexed from 0 (as sentence-transformers does)
        layer_indices = list(range(num_layers - 1))
        if 0 < self.n_layers_per_step < len(layer_indices):
            layer_indices = random.sample(layer_indices, self.n_layers_per_step)
        for idx in layer_indices:
            embeddings = [self._head(out, hidden[idx + 1]) for out, hidden in outputs]
            layer_loss = self.loss.compute_loss_from_embeddings(embeddings, labels)
            loss = loss + layer_loss / (1 + idx) / len(layer_indices) * self.prior_layers_weight
            if self.kl_temperature > 0:
                log_probs = F.log_softmax(torch.cat(embeddings) / self.kl_temperature, dim=-1)
                kl = F.kl_div(log_probs, final_probs, reduction="batchmean")
                loss = loss + kl * self.kl_temperature * self.kl_div_weight
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {"loss": type(self.loss).__name__, "n_layers_per_step": self.n_layers_per_step,
                "last_layer_weight": self.last_layer_weight, "prior_layers_weight": self.prior_layers_weight,
                "kl_div_weight": self.kl_div_weight, "kl_temperature": self.kl_temperature}
