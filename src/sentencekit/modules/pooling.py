from __future__ import annotations

import os
from typing import ClassVar

import torch
from torch import Tensor

from sentencekit.modules.base import Module

# Output layout when several modes are combined: sentence-transformers concatenates in this order.
POOLING_MODES: tuple[str, ...] = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# v5 per-mode boolean keys of 1_Pooling/config.json
_V5_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}
_ALIASES = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean", "last_token": "lasttoken",
            "weighted_mean": "weightedmean", "mean_sqrt_len": "mean_sqrt_len_tokens"}


def _parse_modes(pooling_mode: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    modes = [pooling_mode] if isinstance(pooling_mode, str) else list(pooling_mode)
    out = []
    for mode in modes:
        mode = _ALIASES.get(str(mode).lower(), str(mode).lower())
        if mode not in POOLING_MODES:
            raise ValueError(f"Unknown pooling mode {mode!r}; choose from {', '.join(POOLING_MODES)}.")
        out.append(mode)
    if not out:
        raise ValueError("Pooling needs at least one pooling mode.")
    return tuple(m for m in POOLING_MODES if m in out)  # canonical concatenation order


class Pooling(Module):
    """Turns ``token_embeddings`` into one ``sentence_embedding`` per text.

    Modes: ``cls``, ``mean``, ``max``, ``mean_sqrt_len_tokens``, ``weightedmean``, ``lasttoken``; several
    at once are concatenated (in sentence-transformers' order). With ``include_prompt=False`` the
    prompt's tokens are left out of the pooled average.

    >>> import torch
    >>> pool = Pooling(4, pooling_mode="mean")
    >>> out = pool({"token_embeddings": torch.ones(2, 3, 4), "attention_mask": torch.ones(2, 3)})
    >>> out["sentence_embedding"].shape
    torch.Size([2, 4])
    """

    st_type = "sentence_transformers.models.Pooling"
    config_keys: ClassVar[list[str]] = ["word_embedding_dimension", *(_V5_KEYS[m] for m in POOLING_MODES),
                                        "include_prompt"]

    def __init__(
        self,
        word_embedding_dimension: int,
        pooling_mode: str | list[str] | None = None,
        pooling_mode_cls_token: bool = False,
        pooling_mode_max_tokens: bool = False,
        pooling_mode_mean_tokens: bool = True,
        pooling_mode_mean_sqrt_len_tokens: bool = False,
        pooling_mode_weightedmean_tokens: bool = False,
        pooling_mode_lasttoken: bool = False,
        include_prompt: bool = True,
    ) -> None:
        super().__init__()
        if pooling_mode is not None:
            self.pooling_modes = _parse_modes(pooling_mode)
        else:
            flags = {
                "cls": pooling_mode_cls_token, "max": pooling_mode_max_tokens,
                "mean": pooling_mode_mean_tokens, "mean_sqrt_len_tokens": pooling_mode_mean_sqrt_len_tokens,
                "weightedmean": pooling_mode_weightedmean_tokens, "lasttoken": pooling_mode_lasttoken,
            }
            self.pooling_modes = _parse_modes([m for m, on in flags.items() if on])
        self.word_embedding_dimension = int(word_embedding_dimension)
        self.include_prompt = bool(include_prompt)

    @property
    def pooling_output_dimension(self) -> int:
        return self.word_embedding_dimension * len(self.pooling_modes)

    def get_sentence_embedding_dimension(self) -> int:
        return self.pooling_output_dimension

    def get_config_dict(self) -> dict:
        # Written in the v5 layout: both sentence-transformers v5 and v6 read it.
        config: dict = {"word_embedding_dimension": self.word_embedding_dimension}
        for mode in ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"):
            config[_V5_KEYS[mode]] = mode in self.pooling_modes
        config["include_prompt"] = self.include_prompt
        return config

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> Pooling:
        config = cls.load_config(path)
        dim = config.get("word_embedding_dimension", config.get("embedding_dimension"))
        if dim is None:
            raise ValueError(f"{os.path.join(path, cls.config_file_name)}: no word_embedding_dimension "
                             "(or embedding_dimension) key.")
        include_prompt = config.get("include_prompt", True)
        if "pooling_mode" in config and config["pooling_mode"] is not None:  # v6 layout
            return cls(dim, pooling_mode=config["pooling_mode"], include_prompt=include_prompt)
        flags = {key: bool(config[key]) for key in _V5_KEYS.values() if key in config}
        return cls(dim, **flags, include_prompt=include_prompt)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        prompt_length = features.get("prompt_length") if not self.include_prompt else None
        pooled = pool_tokens(features["token_embeddings"], features.get("attention_mask"), self.pooling_modes,
                             prompt_length=prompt_length or None,
                             token_weights_sum=features.get("token_weights_sum"),
                             cls_token_embeddings=features.get("cls_token_embeddings"))
        return {**features, "sentence_embedding": pooled}


def pool_tokens(token_embeddings: Tensor, attention_mask: Tensor | None, modes: tuple[str, ...], *,
                prompt_length: int | Tensor | None = None, token_weights_sum: Tensor | None = None,
                cls_token_embeddings: Tensor | None = None) -> Tensor:
    """Pool ``token_embeddings`` ``[b, tokens, dim]`` into ``[b, dim * len(modes)]`` (the modes concatenated in
    the given order), the math of :class:`Pooling` and of its ONNX export (traceable: no Python values read from
    tensors). Same results as sentence-transformers 6.2's ``Pooling`` for either padding side:

    - only positions whose ``attention_mask`` is 1 count, and their values are selected, never multiplied by the
      mask, so whatever a model leaves at padded positions (left-padded causal attention may leave NaN there)
      cannot leak into any mode;
    - ``prompt_length`` (``include_prompt=False``) drops each row's first ``prompt_length`` real tokens, wherever
      its padding is;
    - ``cls`` is the first position left, ``lasttoken`` the last one (a row with none left gives zeros); ``max``
      gives 0 for a row with none left; ``weightedmean`` weighs the k-th position from the first real token
      (prompt included) by k, so left padding does not shift the weights;
    - ``mean`` / ``weightedmean`` sum half-precision embeddings in float32 and return the input dtype;
      ``token_weights_sum`` ``[b]`` (a module's weighted token counts) replaces their denominators and
      ``cls_token_embeddings`` ``[b, dim]`` the ``cls`` rows.
    """
    if attention_mask is None:
        attention_mask = torch.ones(token_embeddings.shape[:2], dtype=torch.int64, device=token_embeddings.device)
    real = attention_mask > 0
    keep = real
    if prompt_length is not None:
        keep = real & (real.to(torch.int32).cumsum(dim=1) > prompt_length)
    keep3 = keep.unsqueeze(-1)
    wide = torch.float32 if token_embeddings.dtype in (torch.float16, torch.bfloat16) else token_embeddings.dtype
    kept = torch.where(keep3, token_embeddings, torch.zeros((), dtype=token_embeddings.dtype,
                                                            device=token_embeddings.device))
    hidden = token_embeddings.shape[-1]

    def gather(index: Tensor) -> Tensor:
        return kept.gather(1, index.to(torch.int64).view(-1, 1, 1).expand(-1, 1, hidden)).squeeze(1)

    outputs = []
    for mode in modes:
        if mode == "cls":
            # argmax on int32: ONNX Runtime has no int64 ArgMax kernel on some builds
            outputs.append(cls_token_embeddings if cls_token_embeddings is not None else
                           gather(keep.to(torch.int32).argmax(dim=1)))
        elif mode == "max":
            pooled = token_embeddings.masked_fill(~keep3, float("-inf")).max(dim=1).values
            outputs.append(torch.where(torch.isinf(pooled) & (pooled < 0), torch.zeros_like(pooled), pooled))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed = kept.to(wide).sum(dim=1)
            counts = keep.to(wide).sum(dim=1, keepdim=True) if token_weights_sum is None else \
                token_weights_sum.to(wide).unsqueeze(-1)
            counts = counts.clamp(min=1e-9)
            outputs.append((summed / (counts if mode == "mean" else counts.sqrt())).to(token_embeddings.dtype))
        elif mode == "weightedmean":
            positions = real.to(torch.int32).cumsum(dim=1)  # 1 at the first real token, whatever the padding
            weights = (positions * keep.to(torch.int32)).to(wide).unsqueeze(-1)
            total = weights.sum(dim=1) if token_weights_sum is None else token_weights_sum.to(wide).unsqueeze(-1)
            summed = (kept.to(wide) * weights).sum(dim=1)
            outputs.append((summed / total.clamp(min=1e-9)).to(token_embeddings.dtype))
        else:  # lasttoken: the last position left (positions * keep peaks there; a row with none gives 0: zeros)
            positions = torch.ones_like(keep, dtype=torch.int32).cumsum(dim=1) - 1
            outputs.append(gather((positions * keep.to(torch.int32)).max(dim=1).values))
    return torch.cat(outputs, dim=1)
