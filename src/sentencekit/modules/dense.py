from __future__ import annotations

import os
from typing import Any

from torch import Tensor, nn

from sentencekit.files import ModelFormatError
from sentencekit.modules.activations import activation_name, resolve_activation
from sentencekit.modules.base import Module

SENTENCE = "sentence_embedding"
#: sentence-transformers 6.2's type string, written for a Dense that v5 cannot read (a token-level one)
ST6_TYPE = "sentence_transformers.base.modules.dense.Dense"


class Dense(Module):
    """A linear layer plus activation, on ``sentence_embedding`` (e.g. to project 768 -> 256) or, with
    ``module_input_name="token_embeddings"``, on every token (``[b, tokens, in] -> [b, tokens, out]``: the
    projection of a multi-vector / ColBERT model). The result goes to ``module_output_name`` (default: the
    input's name).

    A sentence-level Dense saves sentence-transformers v5's config (four keys, which v5 and v6 read); a
    token-level one saves 6.2's (plus ``module_input_name`` / ``module_output_name``) under 6.2's type string.
    ``use_residual`` (6.2) is not supported: loading a config that sets it raises ``ModelFormatError``.

    >>> import torch
    >>> dense = Dense(4, 2, activation_function=torch.nn.Identity())
    >>> dense({"sentence_embedding": torch.ones(1, 4)})["sentence_embedding"].shape
    torch.Size([1, 2])
    >>> tokens = Dense(4, 2, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    >>> tokens({"token_embeddings": torch.ones(1, 3, 4)})["token_embeddings"].shape
    torch.Size([1, 3, 2])
    """

    st_type_v5 = "sentence_transformers.models.Dense"
    config_keys = ["in_features", "out_features", "bias", "activation_function"]
    has_weights = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation_function: nn.Module | str | None = None,
        init_weight: Tensor | None = None,
        init_bias: Tensor | None = None,
        *,
        module_input_name: str = SENTENCE,
        module_output_name: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bias = bool(bias)
        if activation_function is None:
            activation_function = nn.Tanh()  # sentence-transformers' default
        elif isinstance(activation_function, str):
            activation_function = resolve_activation(activation_function, trust_remote_code=trust_remote_code)
        self.activation = activation_function
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name or module_input_name
        self.linear = nn.Linear(self.in_features, self.out_features, bias=self.bias)
        if init_weight is not None:
            self.linear.weight = nn.Parameter(init_weight)
        if init_bias is not None:
            self.linear.bias = nn.Parameter(init_bias)

    @property
    def activation_function(self) -> str:
        return activation_name(self.activation)

    @property
    def sentence_level(self) -> bool:
        """Whether it maps ``sentence_embedding`` to itself (the layout sentence-transformers v5 knows)."""
        return self.module_input_name == SENTENCE and self.module_output_name == SENTENCE

    @property
    def st_type(self) -> str:  # type: ignore[override]
        return type(self).st_type_v5 if self.sentence_level else ST6_TYPE

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation_function,
        }
        if not self.sentence_level:  # v5 readers reject unknown keys: only when needed
            config["module_input_name"] = self.module_input_name
            config["module_output_name"] = self.module_output_name
        return config

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.activation(self.linear(features[self.module_input_name]))
        return {**features, self.module_output_name: out}

    def get_sentence_embedding_dimension(self) -> int:
        return self.out_features

    get_embedding_dimension = get_sentence_embedding_dimension

    @classmethod
    def load(cls, path: str | os.PathLike, trust_remote_code: bool = False, **kwargs: Any) -> Dense:
        config = cls.load_config(path)
        if config.get("use_residual"):
            raise ModelFormatError(f"{os.path.join(path, cls.config_file_name)} sets use_residual (a residual "
                                   "projection, sentence-transformers 6.2), which sentencekit does not support yet.")
        known = {k: config[k] for k in ("in_features", "out_features", "bias", "activation_function",
                                        "module_input_name", "module_output_name") if config.get(k) is not None}
        module = cls(**known, trust_remote_code=trust_remote_code)
        module.load_weights(path)
        return module

    def __repr__(self) -> str:
        return f"Dense({self.get_config_dict()})"


__all__ = ["Dense"]
