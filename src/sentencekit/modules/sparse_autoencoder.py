"""``SparseAutoEncoder``: a dense embedding -> a k-sparse code (CSR, Contrastive Sparse Representation).

Wen et al., "Beyond Matryoshka: Revisiting Sparse Coding for Adaptive Representation" (ICML 2025,
arXiv:2503.01776), after the top-k sparse autoencoders of Gao et al. (arXiv:2406.04093); behaviour and
on-disk format as sentence-transformers 6.2
(``sentence_transformers.sparse_encoder.modules.sparse_auto_encoder.SparseAutoEncoder``). Outside
``torch.inference_mode`` (training, and the trainer's evaluation loss) the forward also returns the
reconstructions and auxiliary codes that ``CSRLoss`` needs, under sentence-transformers' keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sentencekit.files import ModelFormatError, load_state_dict, save_state_dict, write_json
from sentencekit.modules.base import Module


class SparseAutoEncoder(Module):
    """Top-k sparse code of ``features["sentence_embedding"]`` ``[b, input_dim]`` -> ``[b, hidden_dim]``:
    ``x`` (standardised per row if ``normalize``), ``z = (x - pre_bias) @ W_enc.T + latent_bias``, keep
    each row's ``k`` largest values (``k``: the ``max_active_dims`` forward argument, else ``self.k``), zero
    the rest, ReLU. The decoder is tied to the encoder (its transpose), so the matrix is saved once, as
    ``decoder.linear.weight`` ``[hidden_dim, input_dim]`` (``encoder.weight`` is read too), next to
    ``pre_bias``, ``latent_bias`` and the int64 ``stats_last_nonzero``. Raises ``ValueError`` for
    dimensions or ``k`` that are not positive.

    Outside ``torch.inference_mode`` (``encode`` runs inside it) the forward adds, for ``CSRLoss``
    (all ``[b, hidden_dim]`` latents / ``[b, input_dim]`` reconstructions, the input's dtype):
    ``sentence_embedding_backbone`` (the input), ``sentence_embedding_encoded`` (``z`` before top-k),
    ``sentence_embedding_encoded_4k`` (top-``4k`` code), ``auxiliary_embedding`` (top-``k_aux`` code over
    the latents dead for more than ``dead_threshold`` steps; ``None`` when ``k_aux`` is 0),
    ``decoded_embedding_k`` / ``_4k`` / ``_aux`` (``code @ W_enc + pre_bias``, un-standardised when
    ``normalize``; ``_aux`` ``None`` without ``k_aux``) and ``decoded_embedding_k_pre_bias``
    (``decoded_embedding_k - pre_bias``; ``- pre_bias * std`` with ``normalize``). With ``normalize`` the
    rows are standardised (``(x - mean) / (std + 1e-5)``) before encoding and the reconstructions
    un-standardised (``* std + mean``; the auxiliary one ``* std`` only, a residual); the backbone output
    stays the raw input, their target. A training step (``train()`` mode, gradients on) also updates
    ``stats_last_nonzero``, the steps since each latent last fired (Gao et al. 2024, sec. A.2), as
    sentence-transformers 6.2 does: once for the top-``k`` selection, before the auxiliary code, and once
    for the top-``4k`` one, after it (each selection adds one step).

    >>> import torch
    >>> sae = SparseAutoEncoder(input_dim=4, hidden_dim=16, k=3)
    >>> out = sae({"sentence_embedding": torch.randn(2, 4)})["sentence_embedding"]
    >>> out.shape, bool(((out != 0).sum(dim=1) <= 3).all())
    (torch.Size([2, 16]), True)
    """

    st_type: ClassVar[str] = "sentence_transformers.sparse_encoder.modules.sparse_auto_encoder.SparseAutoEncoder"
    config_keys: ClassVar[list[str]] = ["input_dim", "hidden_dim", "k", "k_aux", "normalize", "dead_threshold"]
    forward_kwargs: ClassVar[set[str]] = {"max_active_dims"}
    has_weights = True

    def __init__(self, input_dim: int, hidden_dim: int = 512, k: int = 8, k_aux: int = 512, normalize: bool = False,
                 dead_threshold: int = 30) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("hidden_dim", hidden_dim), ("k", k), ("k_aux", k_aux)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SparseAutoEncoder {name} must be a positive integer, got {value!r}")
        self.input_dim, self.hidden_dim, self.k, self.k_aux = input_dim, hidden_dim, k, k_aux
        self.normalize = bool(normalize)
        self.dead_threshold = int(dead_threshold)
        self.pre_bias = nn.Parameter(torch.zeros(input_dim))
        self.encoder = nn.Linear(input_dim, hidden_dim, bias=False)
        self.latent_bias = nn.Parameter(torch.zeros(hidden_dim))
        self.register_buffer("stats_last_nonzero", torch.zeros(hidden_dim, dtype=torch.long))

    def get_sentence_embedding_dimension(self) -> int:
        return self.hidden_dim

    @staticmethod
    def _top_k_code(z: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(code, top-k indices)``: ``z``'s ``k`` largest values per row (ReLU'd), zeros elsewhere."""
        top = torch.topk(z, min(k, z.shape[-1]), dim=-1)
        return torch.zeros_like(z).scatter(-1, top.indices, torch.relu(top.values)), top.indices

    def _decode(self, code: Tensor, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
        """The tied decoder: ``code @ W_enc + pre_bias`` ``[b, input_dim]``, times ``std`` and plus ``mean`` when
        given (un-standardising, with ``normalize``)."""
        out = code @ self.encoder.weight + self.pre_bias
        if std is not None:
            out = out * std
        return out + mean if mean is not None else out

    def forward(self, features: dict[str, Any], max_active_dims: int | None = None, **kwargs: Any) -> dict[str, Any]:
        raw: Tensor = features["sentence_embedding"]
        x, mean, std = raw, None, None
        if self.normalize:
            mean, std = raw.mean(dim=-1, keepdim=True), raw.std(dim=-1, keepdim=True)
            x = (raw - mean) / (std + 1e-5)
        z = self.encoder(x - self.pre_bias) + self.latent_bias
        k = int(max_active_dims or self.k)
        code, indices = self._top_k_code(z, k)
        out = {**features, "sentence_embedding_backbone": raw, "sentence_embedding": code}
        if torch.is_inference_mode_enabled():  # encode(): the code is all it needs
            return out
        training_step = self.training and torch.is_grad_enabled()  # not the trainer's evaluation loss
        if training_step:
            self._update_dead_latent_stats(indices, code)
        auxiliary = decoded_aux = None
        if self.k_aux:
            # latents that have not fired for dead_threshold steps: the auxiliary loss revives them
            dead = (self.stats_last_nonzero > self.dead_threshold).to(z.dtype)
            auxiliary, _ = self._top_k_code(z * dead, self.k_aux)
            # it reconstructs the residual of the k code (a difference: no mean), as sentence-transformers does
            decoded_aux = self._decode(auxiliary, std=std)
        code_4k, indices_4k = self._top_k_code(z, 4 * k)
        if training_step:  # sentence-transformers counts the top-4k selection as firing too (after the auxiliary)
            self._update_dead_latent_stats(indices_4k, code_4k)
        decoded_k = self._decode(code, mean, std)
        out.update({
            "sentence_embedding_encoded": z, "sentence_embedding_encoded_4k": code_4k,
            "auxiliary_embedding": auxiliary, "decoded_embedding_k": decoded_k,
            "decoded_embedding_4k": self._decode(code_4k, mean, std), "decoded_embedding_aux": decoded_aux,
            "decoded_embedding_k_pre_bias": decoded_k - (self.pre_bias * std if std is not None else self.pre_bias),
        })
        return out

    @torch.no_grad()
    def _update_dead_latent_stats(self, indices: Tensor, code: Tensor) -> None:
        """Steps since each latent was last among a row's top-k with a value > 1e-5 (reset to 1 when it fires)."""
        fired = torch.zeros_like(self.stats_last_nonzero)
        fired.scatter_add_(0, indices.reshape(-1),
                           (code.gather(-1, indices) > 1e-5).to(fired.dtype).reshape(-1))
        self.stats_last_nonzero *= 1 - fired.clamp(max=1)
        self.stats_last_nonzero += 1

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        Path(output_path).mkdir(parents=True, exist_ok=True)
        write_json(Path(output_path) / self.config_file_name, self.get_config_dict(), indent=4)
        state = {k: v.detach() for k, v in self.state_dict().items()}
        state["decoder.linear.weight"] = state.pop("encoder.weight")  # the tied matrix, as ST names it
        save_state_dict(state, output_path, safe_serialization=safe_serialization)

    def load_weights(self, path: str | os.PathLike) -> None:
        state = dict(load_state_dict(path))
        if "decoder.linear.weight" in state:
            state["encoder.weight"] = state.pop("decoder.linear.weight")
        missing = {"pre_bias", "latent_bias", "encoder.weight"} - set(state)
        if missing:
            raise ModelFormatError(f"{path}: SparseAutoEncoder weights lack {sorted(missing)}.")
        state.setdefault("stats_last_nonzero", self.stats_last_nonzero)
        nn.Module.load_state_dict(self, state, strict=True)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> SparseAutoEncoder:
        config = cls.load_config(path)
        module = cls(**{key: config[key] for key in cls.config_keys if key in config})
        module.load_weights(path)
        return module


__all__ = ["SparseAutoEncoder"]
