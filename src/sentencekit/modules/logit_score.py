"""``LogitScore``: the score head of a generative (causal-LM) reranker, as sentence-transformers 6.2 defines it
(``sentence_transformers.cross_encoder.modules.logit_score.LogitScore``)."""

from __future__ import annotations

from typing import Any, ClassVar

from sentencekit.modules.base import Module


class LogitScore(Module):
    """Relevance from next-token logits: ``scores = logits[:, -1, true] - logits[:, -1, false]`` (the log-odds of
    the "yes" answer over the "no" one; with the default Sigmoid activation this is P(yes) under a softmax over
    the two tokens), or ``logits[:, -1, true]`` without a false token.

    Reads ``features[module_input_name]`` (``causal_logits`` ``[b, t, vocab]`` from a ``text-generation``
    Transformer; left padding makes the last position a real token) and adds ``features["scores"]``
    ``[b, 1]`` in the logits' dtype. ``config.json`` holds the three constructor arguments. Raises
    ``ValueError`` for a token id outside the vocabulary of the logits.

    >>> import torch
    >>> head = LogitScore(true_token_id=1, false_token_id=0)
    >>> head({"causal_logits": torch.tensor([[[0.5, 2.0, 9.0]]])})["scores"]
    tensor([[1.5000]])
    """

    st_type: ClassVar[str] = "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"
    config_keys: ClassVar[list[str]] = ["true_token_id", "false_token_id", "module_input_name"]

    def __init__(self, true_token_id: int, false_token_id: int | None = None,
                 module_input_name: str = "causal_logits") -> None:
        super().__init__()
        for name, value in (("true_token_id", true_token_id), ("false_token_id", false_token_id)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"LogitScore {name} must be a non-negative token id, got {value!r}")
        if true_token_id is None:
            raise ValueError("LogitScore needs true_token_id (the vocabulary id of the positive answer, e.g. 'yes').")
        self.true_token_id = int(true_token_id)
        self.false_token_id = None if false_token_id is None else int(false_token_id)
        self.module_input_name = module_input_name

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits = features[self.module_input_name][:, -1]
        vocab = logits.shape[-1]
        if max(self.true_token_id, self.false_token_id or 0) >= vocab:
            raise ValueError(f"LogitScore token ids ({self.true_token_id}, {self.false_token_id}) are outside the "
                             f"model's {vocab} logits: the LogitScore config does not belong to this model.")
        scores = logits[:, self.true_token_id]
        if self.false_token_id is not None:
            scores = scores - logits[:, self.false_token_id]
        return {**features, "scores": scores.unsqueeze(1)}


__all__ = ["LogitScore"]
