from __future__ import annotations

import os

from torch import Tensor, nn

from sentencekit.modules.activations import activation_name, resolve_activation
from sentencekit.modules.base import Module


class Dense(Module):
    """A linear layer plus activation on ``sentence_embedding`` (e.g. to project 768 -> 256).

    >>> import torch
    >>> dense = Dense(4, 2, activation_function=torch.nn.Identity())
    >>> dense({"sentence_embedding": torch.ones(1, 4)})["sentence_embedding"].shape
    torch.Size([1, 2])
    """

    st_type = "sentence_transformers.models.Dense"
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
        self.linear = nn.Linear(self.in_features, self.out_features, bias=self.bias)
        if init_weight is not None:
            self.linear.weight = nn.Parameter(init_weight)
        if init_bias is not None:
            self.linear.bias = nn.Parameter(init_bias)

    @property
    def activation_function(self) -> str:
        return activation_name(self.activation)

    def get_config_dict(self) -> dict:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation_function,
        }

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**features, "sentence_embedding": self.activation(self.linear(features["sentence_embedding"]))}

    def get_sentence_embedding_dimension(self) -> int:
        return self.out_features

    @classmethod
    def load(cls, path: str | os.PathLike, trust_remote_code: bool = False, **kwargs) -> Dense:
        config = cls.load_config(path)
        known = {k: config[k] for k in ("in_features", "out_features", "bias", "activation_function")
                 if k in config}
        module = cls(**known, trust_remote_code=trust_remote_code)
        module.load_weights(path)
        return module
