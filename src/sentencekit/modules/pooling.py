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
        token_embeddings = features["token_embeddings"]
        attention_mask = features.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones(token_embeddings.shape[:2], device=token_embeddings.device)
        prompt_length = features.get("prompt_length")
        if not self.include_prompt and prompt_length:
            # Drop the first `prompt_length` real tokens of each row (works for left padding too);
            # a new tensor, so the caller's attention_mask is not changed.
            prompt_length = int(prompt_length)
            attention_mask = attention_mask * (attention_mask.cumsum(dim=1) > prompt_length)
        mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)

        outputs = []
        for mode in self.pooling_modes:
            if mode == "cls":
                cls = features.get("cls_token_embeddings")
                if cls is None:
                    # First token left in the mask (left padding aware). With include_prompt=False that
                    # is the first non-prompt token, as in sentence-transformers v6 (v5 took token 0).
                    first = attention_mask.int().argmax(dim=1)
                    cls = token_embeddings[torch.arange(token_embeddings.shape[0]), first]
                outputs.append(cls)
            elif mode == "max":
                masked = token_embeddings.masked_fill(mask == 0, float("-inf"))
                pooled = masked.max(dim=1).values
                outputs.append(torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled))
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                summed = (token_embeddings * mask).sum(dim=1)
                if "token_weights_sum" in features:
                    counts = features["token_weights_sum"].unsqueeze(-1).expand(summed.shape)
                else:
                    counts = mask.sum(dim=1)
                counts = counts.clamp(min=1e-9)
                outputs.append(summed / counts if mode == "mean" else summed / counts.sqrt())
            elif mode == "weightedmean":
                weights = torch.arange(1, token_embeddings.shape[1] + 1, device=token_embeddings.device)
                weights = weights.to(token_embeddings.dtype).view(1, -1, 1) * mask
                outputs.append((token_embeddings * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9))
            else:  # lasttoken: the last position whose mask is 1 (right or left padding)
                seq_len = attention_mask.shape[1]
                positions = torch.arange(seq_len, device=attention_mask.device).expand_as(attention_mask)
                last = (positions * (attention_mask > 0)).max(dim=1).values
                outputs.append(token_embeddings[torch.arange(token_embeddings.shape[0]), last])
        return {**features, "sentence_embedding": torch.cat(outputs, dim=1)}
