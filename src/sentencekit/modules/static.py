from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sentencekit.files import (
    ModelFormatError,
    load_state_dict,
    read_json_if_exists,
    save_state_dict,
    write_json,
)
from sentencekit.model2vec import is_model2vec_folder, model2vec_normalizes, model2vec_table
from sentencekit.modules.base import Module

STATIC_CONFIG_FILE = "static_embedding_config.json"


class StaticEmbedding(Module):
    """Static token embeddings averaged per text (model2vec-style models): no attention, very fast.

    Texts are tokenized without special tokens; the sentence embedding is the mean of the token vectors
    (an ``nn.EmbeddingBag``). There is no length limit, so nothing is ever truncated.

    >>> from pathlib import Path                                                      # doctest: +SKIP
    >>> static = StaticEmbedding.from_model2vec("path/to/model2vec/folder")           # doctest: +SKIP
    """

    st_type = "sentence_transformers.models.StaticEmbedding"
    save_in_root = True
    has_weights = True

    def __init__(
        self,
        tokenizer: Any,
        embedding_weights: np.ndarray | Tensor | None = None,
        embedding_dim: int | None = None,
        *,
        drop_token_ids: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            backend = getattr(tokenizer, "backend_tokenizer", getattr(tokenizer, "_tokenizer", None))
            if not isinstance(backend, Tokenizer):
                raise TypeError("StaticEmbedding needs a `tokenizers.Tokenizer` or a fast HF tokenizer.")
            tokenizer = backend
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        if embedding_weights is not None:
            weights = torch.as_tensor(np.asarray(embedding_weights, dtype=np.float32))
            self.embedding = nn.EmbeddingBag.from_pretrained(weights, mode="mean", freeze=False)
        elif embedding_dim is not None:
            self.embedding = nn.EmbeddingBag(tokenizer.get_vocab_size(), embedding_dim, mode="mean")
        else:
            raise ValueError("StaticEmbedding needs embedding_weights or embedding_dim.")
        # model2vec drops the unknown token for word-level vocabularies; kept here for identical vectors.
        self.drop_token_ids = tuple(drop_token_ids)
        self.max_seq_length = math.inf

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.embedding.embedding_dim)

    def tokenize(self, texts: list[str], **kwargs: Any) -> dict[str, Tensor]:
        encodings = self.tokenizer.encode_batch([str(t) for t in texts], add_special_tokens=False)
        ids = [e.ids for e in encodings]
        if self.drop_token_ids:
            ids = [[i for i in row if i not in self.drop_token_ids] for row in ids]
        offsets = torch.tensor([0, *np.cumsum([len(row) for row in ids])[:-1].tolist()], dtype=torch.long)
        flat = torch.tensor([i for row in ids for i in row], dtype=torch.long)
        return {"input_ids": flat, "offsets": offsets[: len(ids)],
                "truncated": torch.zeros(len(ids), dtype=torch.bool)}

    def forward(self, features: dict[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        return {**features, "sentence_embedding": self.embedding(features["input_ids"], features["offsets"])}

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        Path(output_path).mkdir(parents=True, exist_ok=True)
        save_state_dict({"embedding.weight": self.embedding.weight}, output_path,
                        safe_serialization=safe_serialization)
        self.tokenizer.save(str(Path(output_path) / "tokenizer.json"))
        if self.drop_token_ids:
            # Our own small file (sentence-transformers ignores it and keeps the unknown token).
            write_json(Path(output_path) / STATIC_CONFIG_FILE, {"drop_token_ids": list(self.drop_token_ids)})

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> StaticEmbedding:
        from tokenizers import Tokenizer

        path = Path(path)
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelFormatError(f"Missing tokenizer file for StaticEmbedding: {tok_file}")
        tokenizer = Tokenizer.from_file(str(tok_file))
        state = load_state_dict(path)
        if "embedding.weight" in state:
            config = read_json_if_exists(path / STATIC_CONFIG_FILE) or {}
            return cls(tokenizer, state["embedding.weight"].float().numpy(),
                       drop_token_ids=tuple(int(i) for i in config.get("drop_token_ids", ())))
        if "embeddings" in state:  # a model2vec folder
            return cls._from_model2vec_tensors(tokenizer, state, path)
        raise ModelFormatError(f"{path}: weights have neither 'embedding.weight' nor 'embeddings'.")

    @classmethod
    def from_model2vec(cls, model_path: str | os.PathLike) -> StaticEmbedding:
        """Load a model2vec folder (``config.json``, ``model.safetensors``, ``tokenizer.json``)."""
        return cls.load(model_path)

    @classmethod
    def _from_model2vec_tensors(cls, tokenizer, state: dict[str, Tensor], path: Path) -> StaticEmbedding:
        table, drop = model2vec_table({k: v.float().numpy() if k != "mapping" else v.numpy()
                                       for k, v in state.items()}, tokenizer)
        return cls(tokenizer, table, drop_token_ids=drop)


__all__ = ["StaticEmbedding", "is_model2vec_folder", "model2vec_normalizes"]
