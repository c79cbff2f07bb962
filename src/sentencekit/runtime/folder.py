"""Torch-free reading of a model folder for the ONNX backend: what the pipeline is (Transformer ->
Pooling -> Dense -> Normalize), the model-level settings (prompts, similarity function), a content key
that names the cached ONNX export, and where that export lives.

Only the standard library and NumPy are used here, so that loading a model whose export already exists
never imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentencekit.files import ModelFormatError, read_json, read_json_if_exists
from sentencekit.runtime.numpy_ops import DEFAULT_DENSE_ACTIVATION

#: bumped whenever the exported graph or its metadata change meaning (old exports are then ignored)
EXPORT_FORMAT = 3
_SKIP_DIRS = {"onnx", "openvino", ".git", "__pycache__", "checkpoints"}
_SKIP_FILES = {"README.md"}
_SMALL = 1 << 20  # files up to 1 MiB are hashed whole; larger ones by size, mtime and sampled bytes
_SAMPLE = 1 << 16
_TRANSFORMER_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json",
                        "sentence_distilbert_config.json", "sentence_xlm-roberta_config.json")


@dataclass
class DenseSpec:
    """One ``Dense`` module: its folder and config (weights are read only when NumPy must apply it)."""

    path: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str


@dataclass
class PipelineSpec:
    """A sentence-transformers embedder folder as the ONNX backend sees it.

    >>> spec = read_pipeline(Path("my-model"))                       # doctest: +SKIP
    >>> spec.pooling_modes, spec.normalize
    (('mean',), True)
    """

    folder: Path
    module_types: list[str]
    transformer_path: Path
    max_seq_length: int | None = None
    do_lower_case: bool = False
    pooling_modes: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    word_dim: int | None = None
    dense: list[DenseSpec] = field(default_factory=list)
    normalize: bool = False
    model_config: dict[str, Any] = field(default_factory=dict)

    @property
    def supported(self) -> bool:
        """Whether the whole pipeline can become one ONNX graph (Transformer, Pooling, Dense, Normalize)."""
        return bool(self.module_types) and self.module_types[0] == "Transformer" and all(
            t in ("Pooling", "Dense", "Normalize") for t in self.module_types[1:])


_POOL_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
              "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
              "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
_ORDER = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_ALIASES = {"cls_token": "cls", "max_tokens": "max", "mean_tokens": "mean", "last_token": "lasttoken",
            "weighted_mean": "weightedmean", "mean_sqrt_len": "mean_sqrt_len_tokens"}


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    if config.get("pooling_mode") is not None:
        raw = config["pooling_mode"]
        modes = {_ALIASES.get(m, m) for m in ([raw] if isinstance(raw, str) else raw)}
    else:
        modes = {mode for key, mode in _POOL_KEYS.items() if config.get(key)}
    return tuple(m for m in _ORDER if m in modes) or ("mean",)


def read_transformer_config(path: Path) -> dict[str, Any]:
    for name in _TRANSFORMER_CONFIGS:
        if (path / name).is_file():
            config = read_json(path / name, what="Transformer config")
            return config if isinstance(config, dict) else {}
    return {}


def read_pipeline(folder: Path) -> PipelineSpec:
    """The module chain of an embedder folder (a plain Hugging Face folder counts as Transformer + mean
    Pooling, as the torch path loads it)."""
    folder = Path(folder)
    model_config = read_json_if_exists(folder / "config_sentence_transformers.json", what="model") or {}
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        if not (folder / "config.json").is_file():
            raise ModelFormatError(f"{folder} is not a model folder: it has neither modules.json nor config.json.")
        tconf = read_transformer_config(folder)
        return PipelineSpec(folder, ["Transformer", "Pooling"], folder, tconf.get("max_seq_length"),
                            bool(tconf.get("do_lower_case", False)), model_config=model_config)
    entries = read_json(modules_file, what="modules")
    types = [str(e.get("type", "")).rsplit(".", 1)[-1] for e in entries]
    spec = PipelineSpec(folder, types, folder / entries[0].get("path", ""), model_config=model_config)
    for entry, kind in zip(entries, types):
        path = folder / entry.get("path", "")
        if kind == "Transformer":
            tconf = read_transformer_config(path)
            spec.transformer_path = path
            spec.max_seq_length = tconf.get("max_seq_length")
            spec.do_lower_case = bool(tconf.get("do_lower_case", False))
        elif kind == "Pooling":
            pconf = read_json(path / "config.json", what="Pooling config")
            spec.pooling_modes = _pooling_modes(pconf)
            spec.include_prompt = bool(pconf.get("include_prompt", True))
            spec.word_dim = pconf.get("word_embedding_dimension", pconf.get("embedding_dimension"))
        elif kind == "Dense":
            dconf = read_json(path / "config.json", what="Dense config")
            spec.dense.append(DenseSpec(path, int(dconf["in_features"]), int(dconf["out_features"]),
                                        bool(dconf.get("bias", True)),
                                        str(dconf.get("activation_function") or DEFAULT_DENSE_ACTIVATION)))
        elif kind == "Normalize":
            spec.normalize = True
    return spec


def folder_key(folder: Path, variant: str = "") -> str:
    """A key for everything in ``folder`` that decides a model's outputs (configs, tokenizer, weights),
    so an export is reused only for the exact model it came from. Large files count by size, mtime and
    sampled bytes (hashing a 400 MB weights file on every load would cost more than loading it).

    >>> folder_key(Path("my-model"))                                   # doctest: +SKIP
    '3f0c9b6f1e2d4a5b'
    """
    digest = hashlib.sha256(f"sentencekit-onnx:{EXPORT_FORMAT}:{variant}".encode())
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name in _SKIP_FILES or name.startswith("."):
                continue
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + str(stat.st_size).encode())
            with open(path, "rb") as f:
                if stat.st_size <= _SMALL:
                    digest.update(f.read())
                else:
                    digest.update(str(stat.st_mtime_ns).encode())
                    digest.update(f.read(_SAMPLE))
                    f.seek(stat.st_size // 2)
                    digest.update(f.read(_SAMPLE))
                    f.seek(max(0, stat.st_size - _SAMPLE))
                    digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def sentencekit_home() -> Path:
    root = os.environ.get("SENTENCEKIT_HOME")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "sentencekit"


def export_locations(folder: Path) -> list[Path]:
    """Where exports of ``folder`` are looked for, in order: beside the model, then the cache folder."""
    return [Path(folder) / "onnx", sentencekit_home() / "onnx"]


def find_export(folder: Path, file_name: str) -> Path | None:
    for place in export_locations(folder):
        candidate = place / file_name
        if candidate.is_file():
            return candidate
    return None


def writable_export_dir(folder: Path) -> Path:
    """The first export location that can be written (beside the model if possible)."""
    for place in export_locations(folder):
        try:
            place.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=place)
            os.close(fd)
            os.unlink(probe)
            return place
        except OSError:
            continue
    raise PermissionError(f"Cannot write the ONNX export: neither {folder / 'onnx'} nor "
                          f"{sentencekit_home() / 'onnx'} is writable (set SENTENCEKIT_HOME).")


def find_transformer_onnx(folder: Path, file_name: str | None = None) -> Path | None:
    """A transformer-only ONNX file as sentence-transformers / optimum export it: ``file_name`` if
    given (relative to the folder), else ``onnx/model.onnx`` or ``model.onnx``."""
    if file_name:
        path = Path(folder) / file_name
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {path} not found.")
        return path
    for candidate in (Path(folder) / "onnx" / "model.onnx", Path(folder) / "model.onnx"):
        if candidate.is_file():
            return candidate
    return None
