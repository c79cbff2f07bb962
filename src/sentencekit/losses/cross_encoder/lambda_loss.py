"""LambdaLoss: listwise learning to rank that optimises NDCG-like metrics (Wang et al., CIKM 2018)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from sentencekit.losses.cross_encoder._cross_encoder_loss import fullname
from sentencekit.losses.cross_encoder._listwise import ListwiseLoss


class BaseWeightingScheme(nn.Module):
    """A LambdaLoss weighting scheme: pairwise weights from the normalised ``gain`` ``[batch, docs]`` and
    ``discount`` ``[1, docs]`` of documents sorted by predicted score."""

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        raise NotImplementedError


class NoWeightingScheme(BaseWeightingScheme):
    """Every pair weighs 1 (a RankNet-style loss)."""

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        return torch.tensor(1.0, device=gain.device)


class NDCGLoss1Scheme(BaseWeightingScheme):
    """NDCG Loss1: weight ``gain / discount`` of the first document of each pair."""

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        return (gain / discount)[:, :, None]


class NDCGLoss2Scheme(BaseWeightingScheme):
    """NDCG Loss2: a tighter bound on NDCG, weights from the rank distance of the pair."""

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        positions = torch.arange(1, gain.shape[1] + 1, device=gain.device)
        distance = torch.abs(positions[:, None] - positions[None, :])  # |i - j|
        # |1/D(|i-j|) - 1/D(|i-j|+1)|; the diagonal (i == j) is set to 0 below
        deltas = torch.abs(discount[0, distance - 1].abs().pow(-1.0) - discount[0, distance].abs().pow(-1.0))
        deltas.diagonal().zero_()
        return deltas[None, :, :] * torch.abs(gain[:, :, None] - gain[:, None, :])


class LambdaRankScheme(BaseWeightingScheme):
    """LambdaRank: ``|1/D(i) - 1/D(j)| * |G(i) - G(j)|``, a coarse upper bound of NDCG."""

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        return (torch.abs(discount[:, :, None].pow(-1.0) - discount[:, None, :].pow(-1.0))
                * torch.abs(gain[:, :, None] - gain[:, None, :]))


class NDCGLoss2PPScheme(BaseWeightingScheme):
    """NDCG Loss2++: ``mu * NDCGLoss2 + LambdaRank``, the strongest scheme in the LambdaLoss paper."""

    def __init__(self, mu: float = 10.0) -> None:
        super().__init__()
        self.mu = mu
        self.ndcg_loss2 = NDCGLoss2Scheme()
        self.lambda_rank = LambdaRankScheme()

    def forward(self, gain: Tensor, discount: Tensor, true_sorted: Tensor) -> Tensor:
        return (self.mu * self.ndcg_loss2(gain, discount, true_sorted)
                + self.lambda_rank(gain, discount, true_sorted))


class LambdaLoss(ListwiseLoss):
    """(query, [doc_1, ..., doc_n]) inputs with labels [relevance_1, ..., relevance_n] (binary or graded; list
    lengths may differ). A pairwise logistic loss over document pairs whose order is wrong, weighted by
    ``weighting_scheme`` to optimise NDCG(@k). ``mini_batch_size`` as in :class:`ListNetLoss`.

    >>> import torch
    >>> from sentencekit import CrossEncoder
    >>> from sentencekit.losses.cross_encoder import LambdaLoss, NDCGLoss2PPScheme
    >>> model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")                 # doctest: +SKIP
    >>> loss = LambdaLoss(model, weighting_scheme=NDCGLoss2PPScheme(), k=10)        # doctest: +SKIP
    >>> inputs = [["How do I get a refund?"], [["Refunds take 5 days.", "It is sunny.", "Refund policy"]]]
    >>> loss(inputs, [torch.tensor([1.0, 0.0, 1.0])]).backward()                    # doctest: +SKIP
    """

    citation = """
@inproceedings{wang2018lambdaloss,
  title={The lambdaloss framework for ranking metric optimization},
  author={Wang, Xuanhui and Li, Cheng and Golbandi, Nadav and Bendersky, Michael and Najork, Marc},
  booktitle={Proceedings of the 27th ACM international conference on information and knowledge management},
  pages={1313--1322},
  year={2018}
}
"""

    def __init__(self, model: nn.Module,
                 weighting_scheme: BaseWeightingScheme | None = NDCGLoss2PPScheme(),  # noqa: B008
                 k: int | None = None, sigma: float = 1.0, eps: float = 1e-10,
                 reduction_log: Literal["natural", "binary"] = "binary",
                 activation_fn: nn.Module | None = nn.Identity(),  # noqa: B008
                 mini_batch_size: int | None = None) -> None:
        super().__init__(model)
        if reduction_log not in ("natural", "binary"):
            raise ValueError(f"reduction_log must be 'natural' or 'binary', got {reduction_log!r}")
        self.weighting_scheme = weighting_scheme or NoWeightingScheme()
        self.k = k
        self.sigma = sigma
        self.eps = eps
        self.reduction_log = reduction_log
        self.activation_fn = activation_fn or nn.Identity()
        self.mini_batch_size = mini_batch_size

    def forward(self, inputs: list[Any], labels: Any) -> Tensor:
        matrices = self._score_matrix(inputs, labels)
        if matrices is None:  # no documents at all
            return torch.zeros((), device=self.model.device, requires_grad=True)
        scores, label_matrix = matrices
        device, max_docs = scores.device, scores.shape[1]

        # documents in predicted order, with their true labels; and the ideal (label-sorted) order
        scores_sorted, order = scores.sort(descending=True, dim=-1)
        ideal_sorted, _ = label_matrix.sort(descending=True, dim=-1)
        true_sorted = torch.gather(label_matrix, dim=1, index=order)

        # pairs (i, j) that count: both real documents, and (except for NDCGLoss1) label_i > label_j
        true_diffs = true_sorted[:, :, None] - true_sorted[:, None, :]
        pair_mask = torch.isfinite(true_diffs)
        if not isinstance(self.weighting_scheme, NDCGLoss1Scheme):
            pair_mask = pair_mask & (true_diffs > 0)
        k = self.k or max_docs
        top_k = torch.zeros((max_docs, max_docs), dtype=torch.bool, device=device)
        top_k[:k, :k] = True

        # gains normalised by the ideal DCG@k; discounts log2(1 + rank)
        true_sorted = true_sorted.clamp(min=0.0)
        ideal_sorted = ideal_sorted.clamp(min=0.0)
        discount = torch.log2(1.0 + torch.arange(1, max_docs + 1, device=device, dtype=torch.float32))[None, :]
        max_dcg = ((torch.pow(2, ideal_sorted) - 1) / discount)[:, :k].sum(dim=-1).clamp(min=self.eps)
        gain = (torch.pow(2, true_sorted) - 1) / max_dcg[:, None]
        weights = self.weighting_scheme(gain, discount, true_sorted)

        score_diffs = (scores_sorted[:, :, None] - scores_sorted[:, None, :]).clamp(min=-1e8, max=1e8)
        score_diffs = score_diffs.masked_fill(torch.isnan(score_diffs), 0.0)
        weighted_probs = (torch.sigmoid(self.sigma * score_diffs).clamp(min=self.eps) ** weights).clamp(min=self.eps)
        losses = torch.log(weighted_probs) if self.reduction_log == "natural" else torch.log2(weighted_probs)
        selected = losses[pair_mask & top_k]
        if selected.numel() == 0:  # no pair is ordered by the labels (e.g. all labels equal)
            return scores_sorted.sum() * 0.0
        return -selected.mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"weighting_scheme": fullname(self.weighting_scheme), "k": self.k, "sigma": self.sigma,
                "eps": self.eps, "reduction_log": self.reduction_log, "activation_fn": fullname(self.activation_fn),
                "mini_batch_size": self.mini_batch_size}
