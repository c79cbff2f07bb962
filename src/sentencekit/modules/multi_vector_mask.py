"""``MultiVectorMask``: which tokens of a multi-vector (ColBERT-style) model take part in MaxSim scoring.

It overwrites ``features["attention_mask"]`` with a boolean *scoring mask* (sentence-transformers 6.2's
``sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask``, same config and
behaviour):

- start from the real tokens (the tokenizer's attention mask);
- ``task == "query"``: add the query-expansion positions (``features["query_expansion_positions"]``, set
  when the Transformer expands queries with mask tokens: ColBERT scores them even though the encoder
  did not attend to them);
- ``(task or "document") in skiplist_tasks`` (documents by default): drop the tokens whose id is in the
  skiplist (``skiplist_words`` resolved with the tokenizer; words that are not one vocabulary token are
  dropped from the list with a warning, or they would mask every real ``[UNK]``);
- ``task != "query"`` and ``keep_only_token_ids``: keep only those ids (ColPali's image-patch mode).

Without ``input_ids`` the features pass through unchanged. The NumPy twin of the mask (the torch-free
backend) is :func:`sentencekit.engines.numpy_ops.scoring_mask`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

import torch
from torch import Tensor

from sentencekit.modules.base import Module

logger = logging.getLogger(__name__)


def resolve_skiplist(words: list[str], tokenizer: Any) -> list[int]:
    """Token ids of ``words`` (``convert_tokens_to_ids``); a word that maps to the unknown token (it is not one
    vocabulary token) is left out, with one warning naming them all."""
    unk_id = getattr(tokenizer, "unk_token_id", None)
    unk_token = getattr(tokenizer, "unk_token", None)
    ids: list[int] = []
    unresolved: list[str] = []
    for word in words:
        token_id = tokenizer.convert_tokens_to_ids(word)
        if token_id is None or (unk_id is not None and token_id == unk_id and word != unk_token):
            unresolved.append(word)
        else:
            ids.append(int(token_id))
    if unresolved:
        logger.warning("Skiplist words %s are not single tokens of this tokenizer (they map to the unknown token): "
                       "they are left out of the skiplist, so that real unknown tokens keep being scored.",
                       unresolved)
    return ids


class MultiVectorMask(Module):
    """The scoring mask of a multi-vector model (see the module docstring).

    ``skiplist_words``: tokens documents are scored without (default none; ColBERT checkpoints use
    ``list(string.punctuation)``). ``skiplist_tasks``: the tasks the skiplist applies to (a string counts as
    one; default ``["document"]``; inputs encoded without a task count as documents). ``keep_only_token_ids``:
    an allowlist for non-query inputs. The skiplist is resolved to ids by :meth:`resolve_with_tokenizer`
    (``MultiVectorEncoder`` calls it when the model is built; call it again after changing the words).

    >>> mask = MultiVectorMask()
    >>> mask.skip_ids = [5]
    >>> features = {"input_ids": torch.tensor([[2, 5, 7, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    >>> mask(features, task="document")["attention_mask"]
    tensor([[ True, False,  True, False]])
    >>> mask(features, task="query")["attention_mask"]
    tensor([[ True,  True,  True, False]])
    """

    st_type: ClassVar[str] = "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"
    config_keys: ClassVar[list[str]] = ["skiplist_words", "skiplist_tasks", "keep_only_token_ids"]
    forward_kwargs: ClassVar[set[str]] = {"task"}

    def __init__(self, skiplist_words: list[str] | None = None, *, skiplist_tasks: str | list[str] | None = None,
                 keep_only_token_ids: list[int] | None = None) -> None:
        super().__init__()
        self.skiplist_words: list[str] = list(skiplist_words) if skiplist_words is not None else []
        if isinstance(skiplist_tasks, str):
            skiplist_tasks = [skiplist_tasks]
        self.skiplist_tasks: list[str] = list(skiplist_tasks) if skiplist_tasks is not None else ["document"]
        self.keep_only_token_ids: list[int] | None = \
            [int(i) for i in keep_only_token_ids] if keep_only_token_ids is not None else None
        #: the skiplist's token ids (set by :meth:`resolve_with_tokenizer`)
        self.skip_ids: list[int] = []

    def resolve_with_tokenizer(self, tokenizer: Any) -> None:
        """Turn ``skiplist_words`` into token ids with ``tokenizer`` (see :func:`resolve_skiplist`)."""
        self.skip_ids = resolve_skiplist(self.skiplist_words, tokenizer) if self.skiplist_words else []

    def forward(self, features: dict[str, Any], task: str | None = None) -> dict[str, Any]:
        if "input_ids" not in features:
            return features
        input_ids: Tensor = features["input_ids"]
        mask = features["attention_mask"].bool()
        expansion = features.get("query_expansion_positions")
        if task == "query" and expansion is not None:
            mask = mask | expansion.bool()
        if (task or "document") in self.skiplist_tasks and self.skip_ids:
            mask = mask & ~torch.isin(input_ids, torch.as_tensor(self.skip_ids, device=input_ids.device))
        if task != "query" and self.keep_only_token_ids:
            mask = mask & torch.isin(input_ids, torch.as_tensor(self.keep_only_token_ids, device=input_ids.device))
        return {**features, "attention_mask": mask}

    def get_config_dict(self) -> dict[str, Any]:
        return {"skiplist_words": list(self.skiplist_words), "skiplist_tasks": list(self.skiplist_tasks),
                "keep_only_token_ids": self.keep_only_token_ids}

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> MultiVectorMask:
        config = cls.load_config(path)
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            raise ValueError(f"{os.path.join(path, cls.config_file_name)}: unknown MultiVectorMask keys {unknown}.")
        return cls(config.get("skiplist_words"), skiplist_tasks=config.get("skiplist_tasks"),
                   keep_only_token_ids=config.get("keep_only_token_ids"))

    def __repr__(self) -> str:
        return f"MultiVectorMask({self.get_config_dict()})"


__all__ = ["MultiVectorMask", "resolve_skiplist"]
