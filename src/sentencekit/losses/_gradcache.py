"""GradCache machinery (https://arxiv.org/abs/2101.06983) shared by the Cached... losses.

1. Embed every column in mini-batches without a graph, saving each mini-batch's RNG state.
2. Compute the loss on those embeddings and the gradients of the loss with respect to them.
3. On ``backward()``, re-embed each mini-batch with a graph (same RNG state, so the same dropout) and
   backpropagate the cached gradients through it: ``dot(embeddings, cached_grad).backward()``.

Memory stays that of one mini-batch, while the loss sees the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import get_device_states, set_device_states
from tqdm.auto import tqdm

from sentencekit.losses._base import EmbeddingLoss
from sentencekit.modules import StaticEmbedding

#: ``(transform, weight)``: the loss is ``sum(weight * loss(transform(embedding) for each column))``
EmbeddingView = tuple[Callable[[Tensor], Tensor] | None, float]


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


class CachedEmbeddingLoss(EmbeddingLoss):
    """Base class of the GradCache losses. Subclasses implement :meth:`calculate_loss`, a loss over whole-batch
    embeddings that may call ``backward()`` chunk by chunk (``with_backward=True``) to bound memory.

    ``forward(..., embedding_views=[(transform, weight), ...])`` computes ``sum(weight * loss(transform(e)))``
    from one set of cached embeddings: this is how ``MatryoshkaLoss`` trains several truncations at once.
    """

    def __init__(self, model: Any, mini_batch_size: int = 32, show_progress_bar: bool = False) -> None:
        super().__init__(model)
        if isinstance(model[0], StaticEmbedding):
            raise ValueError(f"{type(self).__name__} does not support StaticEmbedding models (their flat token ids "
                             "cannot be split into mini-batches, and they are cheap anyway): use the uncached loss.")
        if mini_batch_size <= 0:
            raise ValueError(f"mini_batch_size must be a positive integer, got {mini_batch_size!r}")
        self.mini_batch_size = mini_batch_size
        self.show_progress_bar = show_progress_bar

    # -- to implement ------------------------------------------------------------------------------
    def calculate_loss(self, embeddings: list[Tensor], labels: Tensor | None, with_backward: bool = False) -> Tensor:
        """The loss of whole-batch embeddings. With ``with_backward`` it backpropagates into the embeddings
        (leaf tensors) as it goes and returns a detached value."""
        raise NotImplementedError

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The same loss value, differentiable as usual (no caching): what wrappers call."""
        return self.calculate_loss(embeddings, labels, with_backward=False)

    # -- GradCache ---------------------------------------------------------------------------------
    def _mini_batches(self, features: dict[str, Any]) -> Iterator[dict[str, Any]]:
        batch_size = len(features["input_ids"]) if "input_ids" in features else len(next(
            v for v in features.values() if isinstance(v, Tensor)))
        for begin in range(0, batch_size, self.mini_batch_size):
            end = begin + self.mini_batch_size
            # slice per-text tensors; keep scalars / non-tensors (e.g. prompt_length) as they are
            yield {k: v[begin:end] if isinstance(v, Tensor) and v.dim() and len(v) == batch_size else v
                   for k, v in features.items()}

    def _embed_without_grad(self, sentence_features: Sequence[dict[str, Any]]
                            ) -> tuple[list[Tensor], list[list[RandContext]]]:
        embeddings, states = [], []
        for features in sentence_features:
            column, column_states = [], []
            for mini_batch in tqdm(list(self._mini_batches(features)), desc="Embed mini-batches",
                                   disable=not self.show_progress_bar, leave=False):
                column_states.append(RandContext(*[v for v in mini_batch.values() if isinstance(v, Tensor)]))
                with torch.no_grad():
                    column.append(self.model(mini_batch)["sentence_embedding"])
            embeddings.append(torch.cat(column))
            states.append(column_states)
        return embeddings, states

    def forward(self, sentence_features: Sequence[dict[str, Any]], labels: Tensor | None = None,
                embedding_views: Sequence[EmbeddingView] | None = None) -> Tensor:
        views = list(embedding_views) if embedding_views else [(None, 1.0)]
        embeddings, states = self._embed_without_grad(sentence_features)
        if not torch.is_grad_enabled():  # evaluation: the loss value is all that is needed
            return sum(weight * self.calculate_loss([t(e) if t else e for e in embeddings], labels)
                       for t, weight in views)

        leaves = [e.detach().requires_grad_() for e in embeddings]
        total = torch.zeros((), device=leaves[0].device)
        for transform, weight in views:
            # Backpropagate the loss into the (possibly transformed) embeddings, then through the transform
            # into the full-size leaves: their .grad sums the cached gradients of all views.
            viewed = [transform(leaf) if transform else leaf for leaf in leaves]
            inputs = [v.detach().requires_grad_() for v in viewed]
            total = total + weight * self.calculate_loss(inputs, labels, with_backward=True)
            grads = [weight * i.grad if i.grad is not None else torch.zeros_like(i) for i in inputs]
            torch.autograd.backward(viewed, grads)
        cached = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves]

        loss = total.detach().requires_grad_()
        loss.register_hook(partial(self._backward_hook, sentence_features=sentence_features,
                                   cached_grads=cached, states=states))
        return loss

    def _backward_hook(self, grad_output: Tensor, sentence_features: Sequence[dict[str, Any]],
                       cached_grads: list[Tensor], states: list[list[RandContext]]) -> None:
        """Step 3: re-embed with a graph, mini-batch by mini-batch, and push the cached gradients through."""
        with torch.enable_grad():
            for features, grad, column_states in zip(sentence_features, cached_grads, states):
                begin = 0
                for mini_batch, state in zip(self._mini_batches(features), column_states):
                    with state:
                        embeddings = self.model(mini_batch)["sentence_embedding"]
                    grad_mb = grad[begin:begin + len(embeddings)]
                    begin += len(embeddings)
                    if embeddings.requires_grad:
                        surrogate = torch.dot(embeddings.flatten(), grad_mb.flatten()) * grad_output
                        surrogate.backward()
