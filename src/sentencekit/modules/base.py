"""The module contract every pipeline step follows (as in sentence-transformers).

A module is a ``torch.nn.Module`` whose ``forward`` takes the shared ``features`` dict and returns it
with its own outputs added. It saves its own JSON config (``config_file_name``, ``config_keys``) and
its own safetensors weights into its folder, and ``load`` rebuilds it from that folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from sentencekit.files import load_state_dict, read_json, save_state_dict, write_json


class Module(nn.Module):
    #: type string written to modules.json; one that sentence-transformers itself resolves
    st_type: ClassVar[str] = ""
    config_file_name: ClassVar[str] = "config.json"
    config_keys: ClassVar[list[str]] = []
    #: saved in the model's root folder when it is the first module (tokenizer-owning modules)
    save_in_root: ClassVar[bool] = False
    #: keyword arguments of ``encode(**kwargs)`` this module's forward accepts
    forward_kwargs: ClassVar[set[str]] = set()
    #: whether the module has weights to save
    has_weights: ClassVar[bool] = False

    def get_config_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.config_keys}

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        Path(output_path).mkdir(parents=True, exist_ok=True)
        if self.config_keys:
            write_json(Path(output_path) / self.config_file_name, self.get_config_dict(), indent=4)
        if self.has_weights:
            save_state_dict(self.state_dict(), output_path, safe_serialization=safe_serialization)

    @classmethod
    def load_config(cls, path: str | os.PathLike) -> dict[str, Any]:
        config = read_json(Path(path) / cls.config_file_name, what=f"{cls.__name__} config")
        if not isinstance(config, dict):
            raise ValueError(f"{Path(path) / cls.config_file_name}: expected a JSON object")
        return config

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> Module:
        config = cls.load_config(path)
        module = cls(**config)
        if cls.has_weights:
            module.load_weights(path)
        return module

    def load_weights(self, path: str | os.PathLike) -> None:
        state = load_state_dict(path)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"Weights in {path} do not fit {type(self).__name__}: missing {missing}, "
                f"unexpected {unexpected}."
            )

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
