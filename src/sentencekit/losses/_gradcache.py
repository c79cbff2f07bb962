"""GradCache machinery (Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
arXiv:2101.06983) shared by the Cached... losses.

1. Embed every column in mini-batches without a graph, saving each mini-batch's RNG state.
2. Compute the loss on those embeddings and the gradients of the loss with respect to them.
3. On ``backward()``, re-embed each mini-batch with a graph (same RNG state, so the same dropout) and
   backpropagate the cached gradients through it: ``dot(embeddings, cached_grad).backward()``.

Memory stays that of one mini-batch, while the loss sees the whole batch. :class:`GradCacheMixin` holds the
three steps; :class:`CachedEmbeddingLoss` is the base of the cached bi-encoder losses, ``CachedSpladeLoss``
(:mod:`sentencekit.losses.sparse.cached_splade_loss`) mixes the steps into ``SpladeLoss``, and
``CachedMultiVectorMultipleNegativesRankingLoss`` caches per-token embeddings (with their scoring masks).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import get_device_states, set_device_states
from tqdm.auto import tqdm

from sentencekit.losses._base import EmbeddingLoss
from sentencekit.losses._token_batches import cat_token_rows
from sentencekit.modules import StaticEmbedding

#: ``(transform, weight)``: the loss is ``sum(weight * loss(transform(embedding) for each column))``
EmbeddingView = tuple[Callable[[Tensor], Tensor] | None, float]
#: what ``calculate_loss`` returns: one 0-d tensor, or named 0-d parts whose sum is the loss
LossValue = Tensor | dict[str, Tensor]
#: ``loss_fn(embeddings, masks, with_backward) -> (total, named parts)`` (see ``GradCacheMixin.run_gradcache``)
CachedLossFn = Callable[[list[Tensor], list[Tensor | None], bool], tuple[Tensor, dict[str, Tensor]]]


class RandContext:
    """Snapshot of the CPU and accelerator RNG states; ``with ctx:`` replays it (and restores the
    surrounding state afterwards), so a second forward pass draws the same dropout masks."""

    def __init__(self, *tensors: Any) -> None:
        self.cpu_state = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, enabled=True)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        set_device_states(self.devices, self.device_states)

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)
        self._fork = None


def batch_size_of(features: dict[str, Any]) -> int:
    """Number of texts in a tokenized column (``input_ids`` rows, else the first tensor's)."""
    if isinstance(features.get("input_ids"), Tensor):
        return len(features["input_ids"])
    return len(next(v for v in features.values() if isinstance(v, Tensor) and v.dim()))


def mini_batch_ranges(features: dict[str, Any], mini_batch_size: int, mini_batch_num_tokens: int | None = None
                      ) -> list[tuple[int, int]]:
    """``(begin, end)`` row ranges: ``mini_batch_size`` rows each, or, with ``mini_batch_num_tokens``, as many
    rows as fit that many non-padding tokens (``attention_mask`` sums; at least one row per range, so a text
    longer than the budget gets a range of its own). Raises ``ValueError`` when a token budget is asked for
    a column without an ``attention_mask``."""
    batch_size = batch_size_of(features)
    if mini_batch_num_tokens is None:
        return [(begin, min(begin + mini_batch_size, batch_size)) for begin in range(0, batch_size, mini_batch_size)]
    mask = features.get("attention_mask")
    if not isinstance(mask, Tensor) or mask.dim() != 2:
        raise ValueError("mini_batch_num_tokens packs mini-batches by token count, read from the 'attention_mask' "
                         f"of the tokenized column; this column has {sorted(features)}. Use mini_batch_size instead.")
    cumulative = mask.sum(dim=1).cumsum(dim=0).tolist()
    ranges, begin = [], 0
    while begin < batch_size:
        before = cumulative[begin - 1] if begin else 0
        end = max(bisect.bisect_right(cumulative, before + mini_batch_num_tokens), begin + 1)
        ranges.append((begin, end))
        begin = end
    return ranges


def slice_rows(features: dict[str, Any], begin: int, end: int) -> dict[str, Any]:
    """Rows ``begin:end`` of a tokenized column, as a new dict. Per-text tensors are sliced; scalars and
    non-tensors (e.g. ``prompt_length``, a multi-vector column's ``task``) are kept. Trailing token positions
    that are padding in every sliced row are dropped (a short mini-batch is not run at the whole batch's
    width; query-expansion positions count as content); leading padding stays."""
    batch_size = batch_size_of(features)
    mask = features.get("attention_mask")
    width, keep = None, None
    if isinstance(mask, Tensor) and mask.dim() == 2:
        width = mask.shape[1]
        active = mask[begin:end].bool()
        expansion = features.get("query_expansion_positions")
        if isinstance(expansion, Tensor):  # ColBERT expansion tokens are not attended to, but they are scored
            active = active | expansion[begin:end].bool()
        active = active.any(dim=0).nonzero()
        keep = int(active.max()) + 1 if len(active) else width
    sliced = {}
    for key, value in features.items():
        if not isinstance(value, Tensor) or not value.dim() or len(value) != batch_size:
            sliced[key] = value
        elif keep is not None and value.dim() >= 2 and value.shape[1] == width:
            sliced[key] = value[begin:end, :keep]
        else:
            sliced[key] = value[begin:end]
    return sliced


class GradCacheMixin:
    """The three GradCache steps for a loss module holding ``self.model`` (put it first among the bases).
    The host calls :meth:`setup_gradcache` in its ``__init__``. Embedding losses implement
    :meth:`calculate_loss` and call :meth:`forward_cached` from ``forward``; a loss that needs more than the
    embeddings (e.g. the scoring masks of per-token embeddings) overrides :meth:`embed_mini_batch` and calls
    :meth:`run_gradcache` with its own loss function."""

    model: Any
    mini_batch_size: int = 32
    mini_batch_num_tokens: int | None = None
    show_progress_bar: bool = False

    def setup_gradcache(self, mini_batch_size: int, mini_batch_num_tokens: int | None = None,
                        show_progress_bar: bool = False) -> None:
        """Check and keep the mini-batching settings. Raises ``ValueError`` for a non-positive size or token
        budget, and for a ``StaticEmbedding`` model (its flat token ids cannot be split into mini-batches)."""
        if isinstance(self.model[0], StaticEmbedding):
            raise ValueError(f"{type(self).__name__} does not support StaticEmbedding models (their flat token ids "
                             "cannot be split into mini-batches, and they are cheap anyway): use the uncached loss.")
        if not isinstance(mini_batch_size, int) or mini_batch_size <= 0:
            raise ValueError(f"mini_batch_size must be a positive integer, got {mini_batch_size!r}")
        if mini_batch_num_tokens is not None and (not isinstance(mini_batch_num_tokens, int)
                                                  or mini_batch_num_tokens <= 0):
            raise ValueError(f"mini_batch_num_tokens must be a positive integer or None, got {mini_batch_num_tokens!r}")
        self.mini_batch_size = mini_batch_size
        self.mini_batch_num_tokens = mini_batch_num_tokens
        self.show_progress_bar = show_progress_bar

    # -- to implement ------------------------------------------------------------------------------
    def calculate_loss(self, embeddings: list[Tensor], labels: Tensor | None, with_backward: bool = False
                       ) -> LossValue:
        """The loss of whole-batch embeddings (a 0-d tensor, or named 0-d parts whose sum is the loss). With
        ``with_backward`` it backpropagates into the embeddings (leaf tensors) as it goes and returns
        detached values."""
        raise NotImplementedError

    def embed_mini_batch(self, features: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """One mini-batch's embeddings (what the gradients are cached for) and their mask (``None``: rows are
        whole embeddings; a ``[rows, tokens]`` mask: per-token embeddings, joined padded on the token axis).
        Default: the ``sentence_embedding`` and no mask."""
        return self.model(features)["sentence_embedding"], None

    # -- GradCache ---------------------------------------------------------------------------------
    def _embed_without_grad(self, sentence_features: Sequence[dict[str, Any]]
                            ) -> tuple[list[Tensor], list[Tensor | None], list[list[RandContext]],
                                       list[list[tuple[int, int]]]]:
        embeddings, masks, states, ranges = [], [], [], []
        for features in sentence_features:
            # the ranges are fixed here and replayed in step 3, whatever the modules do to the features
            column_ranges = mini_batch_ranges(features, self.mini_batch_size, self.mini_batch_num_tokens)
            column, column_masks, column_states = [], [], []
            for begin, end in tqdm(column_ranges, desc="Embed mini-batches", disable=not self.show_progress_bar,
                                   leave=False):
                mini_batch = slice_rows(features, begin, end)
                column_states.append(RandContext(*[v for v in mini_batch.values() if isinstance(v, Tensor)]))
                with torch.no_grad():
                    embedded, mask = self.embed_mini_batch(mini_batch)
                column.append(embedded)
                column_masks.append(mask)
            if column_masks[0] is None:
                embeddings.append(torch.cat(column))
                masks.append(None)
            else:  # per-token embeddings: mini-batches may be of different widths
                joined, mask = cat_token_rows(column, column_masks)
                embeddings.append(joined)
                masks.append(mask)
            states.append(column_states)
            ranges.append(column_ranges)
        return embeddings, masks, states, ranges

    def run_gradcache(self, sentence_features: Sequence[dict[str, Any]], loss_fn: CachedLossFn
                      ) -> tuple[Tensor, dict[str, Tensor]]:
        """Steps 1-3 around ``loss_fn(embeddings, masks, with_backward) -> (total, parts)``, which computes the
        loss of whole-batch embeddings (one per column, with the masks of :meth:`embed_mini_batch`) and, with
        ``with_backward``, backpropagates into them (leaf tensors). Returns the loss (0-d; under autograd its
        backward runs step 3) and ``loss_fn``'s detached named parts."""
        sentence_features = list(sentence_features)
        embeddings, masks, states, ranges = self._embed_without_grad(sentence_features)
        if not torch.is_grad_enabled():  # evaluation: the loss value is all that is needed
            return loss_fn(embeddings, masks, False)
        leaves = [e.detach().requires_grad_() for e in embeddings]
        total, parts = loss_fn(leaves, masks, True)
        cached = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves]
        loss = total.detach().requires_grad_()
        loss.register_hook(partial(self._backward_hook, sentence_features=sentence_features, cached_grads=cached,
                                   states=states, ranges=ranges))
        return loss, parts

    def forward_cached(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None,
                       embedding_views: Sequence[EmbeddingView] | None = None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, parts)`` of :meth:`calculate_loss` under GradCache (see :meth:`run_gradcache`): the loss
        (0-d) and, when ``calculate_loss`` returns named parts, their detached values (weighted and summed over
        the views; otherwise ``{}``)."""
        views = list(embedding_views) if embedding_views else [(None, 1.0)]

        def loss_fn(embeddings: list[Tensor], masks: list[Tensor | None], with_backward: bool
                    ) -> tuple[Tensor, dict[str, Tensor]]:
            parts: dict[str, Tensor] = {}
            total = torch.zeros((), device=embeddings[0].device)
            for transform, weight in views:
                if not with_backward:
                    value = self.calculate_loss([transform(e) if transform else e for e in embeddings], labels)
                    total = total + weight * _accumulate(parts, value, weight)
                    continue
                # Backpropagate the loss into the (possibly transformed) embeddings, then through the transform
                # into the full-size leaves: their .grad sums the cached gradients of all views.
                viewed = [transform(leaf) if transform else leaf for leaf in embeddings]
                inputs = [v.detach().requires_grad_() for v in viewed]
                value = self.calculate_loss(inputs, labels, with_backward=True)
                total = total + weight * _accumulate(parts, value, weight)
                grads = [weight * i.grad if i.grad is not None else torch.zeros_like(i) for i in inputs]
                torch.autograd.backward(viewed, grads)
            return total, parts

        return self.run_gradcache(sentence_features, loss_fn)

    def _backward_hook(self, grad_output: Tensor, sentence_features: Sequence[dict[str, Any]],
                       cached_grads: list[Tensor], states: list[list[RandContext]],
                       ranges: list[list[tuple[int, int]]]) -> None:
        """Step 3: re-embed with a graph, mini-batch by mini-batch, and push the cached gradients through.
        Scaling by ``grad_output`` carries loss scaling and gradient-accumulation division to every part."""
        with torch.enable_grad():
            for features, grad, column_states, column_ranges in zip(sentence_features, cached_grads, states, ranges):
                for (begin, end), state in zip(column_ranges, column_states):
                    with state:
                        embeddings = self.embed_mini_batch(slice_rows(features, begin, end))[0]
                    if embeddings.requires_grad:
                        # per-token embeddings: this mini-batch's width may be below the joined column's
                        block = grad[(slice(begin, end), *(slice(0, n) for n in embeddings.shape[1:]))]
                        surrogate = torch.dot(embeddings.flatten(), block.flatten()) * grad_output
                        surrogate.backward()


def _accumulate(parts: dict[str, Tensor], value: LossValue, weight: float) -> Tensor:
    """Add ``weight *`` a ``calculate_loss`` result's named parts (detached) to ``parts``; return its total."""
    if not isinstance(value, dict):
        return value
    for key, part in value.items():
        parts[key] = parts.get(key, 0.0) + weight * part.detach()
    return torch.stack(list(value.values())).sum()


class CachedEmbeddingLoss(GradCacheMixin, EmbeddingLoss):
    """Base class of the cached bi-encoder losses. Subclasses implement :meth:`calculate_loss`, a loss over
    whole-batch embeddings that may call ``backward()`` chunk by chunk (``with_backward=True``) to bound memory.

    ``forward(..., embedding_views=[(transform, weight), ...])`` computes ``sum(weight * loss(transform(e)))``
    from one set of cached embeddings: this is how ``MatryoshkaLoss`` trains several truncations at once.
    """

    def __init__(self, model: Any, mini_batch_size: int = 32, show_progress_bar: bool = False) -> None:
        super().__init__(model)
        self.setup_gradcache(mini_batch_size, show_progress_bar=show_progress_bar)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The same loss value, differentiable as usual (no caching): what wrappers call."""
        return self.calculate_loss(embeddings, labels, with_backward=False)

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None,
                embedding_views: Sequence[EmbeddingView] | None = None) -> Tensor:
        return self.forward_cached(sentence_features, labels, embedding_views)[0]
