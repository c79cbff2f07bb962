from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from sentencekit.files import read_json_if_exists, write_json
from sentencekit.modules.base import Module

SENTENCE = "sentence_embedding"
#: sentence-transformers 6.2's type string, written for a Normalize that v5 cannot read (a token-level one)
ST6_TYPE = "sentence_transformers.base.modules.normalize.Normalize"


class Normalize(Module):
    """L2-normalises ``sentence_embedding`` so that cosine similarity equals the dot product; with
    ``module_input_name="token_embeddings"`` it normalises every token vector instead (multi-vector models,
    whose MaxSim then sums cosine similarities). ``F.normalize(x, p=2, dim=-1)``, as sentence-transformers.

    A sentence-level Normalize saves no files (v5's layout, which v5 and v6 read); a token-level one saves 6.2's
    ``config.json`` (``module_input_name``, ``module_output_name``) under 6.2's type string.

    >>> import torch
    >>> Normalize()({"sentence_embedding": torch.tensor([[3.0, 4.0]])})["sentence_embedding"]
    tensor([[0.6000, 0.8000]])
    """

    st_type_v5 = "sentence_transformers.models.Normalize"

    def __init__(self, module_input_name: str = SENTENCE, module_output_name: str | None = None) -> None:
        super().__init__()
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name or module_input_name

    @property
    def sentence_level(self) -> bool:
        return self.module_input_name == SENTENCE and self.module_output_name == SENTENCE

    @property
    def st_type(self) -> str:  # type: ignore[override]
        return type(self).st_type_v5 if self.sentence_level else ST6_TYPE

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        x = features.get(self.module_input_name)
        if x is None:
            return features
        return {**features, self.module_output_name: F.normalize(x, p=2, dim=-1)}

    def get_config_dict(self) -> dict[str, Any]:
        # a sentence-level Normalize has no config (as before token-level ones existed: fingerprints stay the same)
        if self.sentence_level:
            return {}
        return {"module_input_name": self.module_input_name, "module_output_name": self.module_output_name}

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        Path(output_path).mkdir(parents=True, exist_ok=True)
        if not self.sentence_level:
            write_json(Path(output_path) / self.config_file_name, self.get_config_dict(), indent=4)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> Normalize:
        # A sentence-level Normalize has no files; its folder may even be absent (all-MiniLM-L6-v2 on the Hub).
        config = read_json_if_exists(Path(path) / cls.config_file_name, what="Normalize config") or {}
        return cls(config.get("module_input_name") or SENTENCE, config.get("module_output_name"))

    def __repr__(self) -> str:
        return f"Normalize({self.get_config_dict() or ''})"


__all__ = ["Normalize"]
