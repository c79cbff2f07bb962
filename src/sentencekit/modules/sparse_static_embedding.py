"""``SparseStaticEmbedding``: the inference-free query side of SPLADE (no transformer at query time).

A text's embedding is, for each vocabulary term present in it, that term's learned weight (e.g. an IDF):
``w[id] = weight[id]`` if token ``id`` occurs in the text, else 0 (repeats count once). Used as the query
route of a ``Router`` whose document route is ``Transformer(fill-mask) + SpladePooling``, as in
sentence-transformers 6.2 (``sentence_transformers.sparse_encoder.modules.SparseStaticEmbedding``) and
the inference-free SPLADE models (Geng et al., "Towards Competitive Search Relevance For Inference-Free
Learned Sparse Representations", arXiv:2411.04403).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sentencekit.files import ModelFormatError, load_state_dict, read_json, save_state_dict, write_json
from sentencekit.modules.base import Module


class SparseStaticEmbedding(Module):
    """Binary term presence times a learned weight per vocabulary term.

    ``tokenizer``: a Hugging Face tokenizer (texts are tokenized without special tokens, cut at its
    ``model_max_length``); ``weight``: ``[vocab]`` float (``None``: all ones); ``frozen``: weights not
    trained. Forward: ``input_ids`` / ``attention_mask`` ``[b, tokens]`` -> ``sentence_embedding``
    ``[b, vocab]`` float32 (multiplied by an upstream ``sentence_embedding`` if the features have one).
    Saves ``config.json`` (``{"frozen": bool}``), ``model.safetensors`` (``{"weight": [vocab]}``) and the
    tokenizer files. Raises ``ValueError`` for a weight that is not ``[vocab]``.

    >>> from transformers import AutoTokenizer                                       # doctest: +SKIP
    >>> static = SparseStaticEmbedding(AutoTokenizer.from_pretrained("bert-base-uncased"))  # doctest: +SKIP
    >>> static(static.tokenize(["hello hello world"]))["sentence_embedding"].sum()   # doctest: +SKIP
    tensor(2.)
    """

    st_type: ClassVar[str] = \
        "sentence_transformers.sparse_encoder.modules.sparse_static_embedding.SparseStaticEmbedding"
    save_in_root = True

    def __init__(self, tokenizer: Any, weight: Tensor | None = None, frozen: bool = False) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.frozen = bool(frozen)
        vocab = int(tokenizer.vocab_size)
        if weight is None:
            weight = torch.ones(vocab)
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if weight.shape != (vocab,):
            raise ValueError(f"SparseStaticEmbedding weight must have shape [{vocab}] (the vocabulary), got "
                             f"{tuple(weight.shape)}")
        self.weight = nn.Parameter(weight, requires_grad=not self.frozen)

    @property
    def max_seq_length(self) -> int | None:
        return getattr(self.tokenizer, "model_max_length", None)

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.tokenizer.model_max_length = value

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.weight.shape[0])

    def tokenize(self, texts: list[Any], **kwargs: Any) -> dict[str, Tensor]:
        """``input_ids`` / ``attention_mask`` (padded, no special tokens) and ``truncated`` per text."""
        texts = [next(iter(t.values())) if isinstance(t, dict) else str(t) for t in texts]
        encoded = self.tokenizer(texts, padding=True, truncation=True, add_special_tokens=False, return_tensors="pt")
        encodings = getattr(encoded, "encodings", None) or []
        truncated = torch.tensor([len(e.overflowing) > 0 for e in encodings], dtype=torch.bool) if encodings \
            else torch.zeros(len(texts), dtype=torch.bool)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "truncated": truncated}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ids: Tensor = features["input_ids"]
        mask = features.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        presence = torch.zeros(ids.shape[0], self.weight.shape[0], device=ids.device, dtype=self.weight.dtype)
        presence = presence.scatter_reduce(1, ids, mask.to(presence.dtype), reduce="amax")
        embedding = presence * self.weight
        if "sentence_embedding" in features:
            embedding = embedding * features["sentence_embedding"]
        return {**features, "sentence_embedding": embedding}

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        path = Path(output_path)
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / self.config_file_name, {"frozen": self.frozen}, indent=4)
        save_state_dict({"weight": self.weight.detach()}, path, safe_serialization=safe_serialization)
        self.tokenizer.save_pretrained(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> SparseStaticEmbedding:
        from transformers import AutoTokenizer

        path = Path(path)
        config = read_json(path / cls.config_file_name, what="SparseStaticEmbedding config")
        tokenizer = AutoTokenizer.from_pretrained(str(path), **(kwargs.get("tokenizer_kwargs") or {}))
        frozen = bool(config.get("frozen", False))
        if str(config.get("path", "")).endswith(".json"):
            json_path = Path(config["path"])
            return cls.from_json(json_path if json_path.is_absolute() else path / json_path, tokenizer, frozen=frozen)
        state = load_state_dict(path)
        if "weight" not in state:
            raise ModelFormatError(f"{path}: SparseStaticEmbedding weights lack 'weight'.")
        return cls(tokenizer, state["weight"].float(), frozen=frozen)

    @classmethod
    def from_json(cls, json_path: str | os.PathLike, tokenizer: Any, frozen: bool = False,
                  **config: Any) -> SparseStaticEmbedding:
        """Weights from a ``{token: weight}`` JSON file (e.g. IDF values); tokens it does not list get 0.
        A local file only (sentencekit reads no Hub repository here). Raises ``ModelFormatError`` for a
        file that is not such an object."""
        table = read_json(Path(json_path), what="token weights")
        if not isinstance(table, dict):
            raise ModelFormatError(f"{json_path}: expected a JSON object {{token: weight}}.")
        vocab = tokenizer.get_vocab()
        weight = torch.zeros(int(tokenizer.vocab_size))
        for token, value in table.items():
            index = vocab.get(token)
            if index is not None and index < weight.shape[0]:
                weight[index] = float(value)
        return cls(tokenizer, weight, frozen=frozen)


__all__ = ["SparseStaticEmbedding"]
