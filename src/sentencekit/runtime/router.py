"""Router (Asym) models without torch: each route (e.g. a static encoder for queries and a transformer for
documents) runs on the torch-free path of its own kind, and ``task`` picks the route as on torch.

Each route is presented as a small sentence-transformers folder of its own (a "view" under
``$SENTENCEKIT_HOME/onnx/routes``: a ``modules.json`` naming the route's module folders, then the modules
after the Router), so it loads exactly like any other model on ``backend="onnx"``: a transformer route
is exported to one ONNX graph, a static route runs as a NumPy table lookup.

>>> from sentencekit import SentenceTransformer
>>> model = SentenceTransformer("my-asymmetric-model", backend="onnx")          # doctest: +SKIP
>>> model.encode_query(["refund?"]).shape, model.encode_document(["Refunds take 5 days."]).shape  # doctest: +SKIP
((1, 256), (1, 256))
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sentencekit.batching import EncodeInfo
from sentencekit.files import ModelFormatError, atomic_directory, read_json, read_json_if_exists, write_json
from sentencekit.model_api import pool_aware
from sentencekit.prompts import resolve_prompt
from sentencekit.runtime.base import check_compute_dtype
from sentencekit.runtime.embedder import OnnxSentenceTransformer

ROUTER_CONFIG = "router_config.json"


def router_entry(folder: Path) -> tuple[int, dict[str, Any]] | None:
    """``(index, modules.json entry)`` of the Router module of a sentence-transformers folder, if any."""
    modules_file = Path(folder) / "modules.json"
    if not modules_file.is_file():
        return None
    for i, entry in enumerate(read_json(modules_file, what="modules")):
        if str(entry.get("type", "")).rsplit(".", 1)[-1] in ("Router", "Asym"):
            return i, entry
    return None


def _route_views(folder: Path, home: Path) -> tuple[dict[str, Path], str | None, bool]:
    """Write (once) one view folder per route; returns ``({route: view}, default_route, allow_empty_key)``."""
    from sentencekit.runtime.folder import folder_key

    entries = read_json(folder / "modules.json", what="modules")
    index, entry = router_entry(folder)  # type: ignore[misc]
    if index != 0:
        raise ValueError(f"{folder}: the torch-free path runs models that start with a Router; this one has it at "
                         f"position {index}. Use backend='torch'.")
    router_dir = folder / entry.get("path", "")
    config_file = router_dir / ROUTER_CONFIG
    config = read_json(config_file if config_file.is_file() else router_dir / "config.json", what="Router config")
    try:
        types, structure = config["types"], config["structure"]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{config_file}: a Router config needs 'types' and 'structure'.") from None
    after = [{**e, "path": str((folder / e.get("path", "")).resolve())} for e in entries[1:]]
    settings = read_json_if_exists(folder / "config_sentence_transformers.json") or {}
    key = folder_key(folder, "router")
    views = {}
    for route, module_ids in structure.items():
        view = home / f"{key}-{route}"
        if not (view / "modules.json").is_file():
            modules = [{"idx": i, "name": str(i), "path": str((router_dir / m).resolve()), "type": types[m]}
                       for i, m in enumerate(module_ids)]
            modules += [{**e, "idx": len(modules) + i, "name": str(len(modules) + i)} for i, e in enumerate(after)]
            with atomic_directory(view) as tmp:
                write_json(Path(tmp) / "modules.json", modules, indent=2)
                write_json(Path(tmp) / "config_sentence_transformers.json", settings, indent=2)
        views[route] = view
    params = config.get("parameters", {})
    return views, params.get("default_route"), bool(params.get("allow_empty_key", True))


class RoutedSentenceTransformer(OnnxSentenceTransformer):
    """A Router model on the torch-free path (see the module docstring). ``encode(..., task=...)``,
    ``encode_query`` and ``encode_document`` pick the route; without one, the default route."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of ``SentenceTransformer(..., backend="onnx")``; each route is loaded with them."""
        from sentencekit.search.defaults import sentencekit_home

        a = self._arguments(*args, **kwargs)
        self._resolve_model(a["model_name_or_path"], a["modules"], a["device"], cache_folder=a["cache_folder"],
                            revision=a["revision"], token=a["token"], local_files_only=a["local_files_only"])
        self.compute_dtype = "int8" if check_compute_dtype(a["compute_dtype"]) == "int8" else "float32"
        views, self.default_route, self.allow_empty_key = _route_views(
            self.model_folder, sentencekit_home() / "onnx" / "routes")
        route_kwargs = {k: a[k] for k in ("trust_remote_code", "model_kwargs", "tokenizer_kwargs", "config_kwargs",
                                          "num_threads", "compute_dtype", "calibration_texts")}
        self.routes: dict[str, OnnxSentenceTransformer] = {
            route: OnnxSentenceTransformer(str(view), **route_kwargs) for route, view in views.items()}
        self.meta = {"kind": "router", "routes": sorted(self.routes)}
        self._local = threading.local()
        settings = read_json_if_exists(self.model_folder / "config_sentence_transformers.json") or {}
        self._init_settings(settings, prompts=a["prompts"], default_prompt_name=a["default_prompt_name"],
                            similarity_fn_name=a["similarity_fn_name"], truncate_dim=a["truncate_dim"])

    # -- routing --------------------------------------------------------------------------------------
    def route(self, task: str | None = None) -> OnnxSentenceTransformer:
        """The model of route ``task`` (default: the default route)."""
        if task is None:
            task = self.default_route
        if task is None:
            if len(self.routes) == 1 and self.allow_empty_key:
                return next(iter(self.routes.values()))
            raise ValueError(f"This model routes inputs by task ({', '.join(self.routes)}) and has no default "
                             "route: use encode_query / encode_document, or pass task=...")
        if task not in self.routes:
            raise ValueError(f"Unknown task {task!r}; this model's routes are {', '.join(self.routes)}.")
        return self.routes[task]

    def _set_task(self, kwargs: dict[str, Any], task: str) -> None:
        if "task" not in kwargs and task in self.routes:
            kwargs["task"] = task

    # -- what a router delegates ----------------------------------------------------------------------
    def _default(self) -> OnnxSentenceTransformer:
        return self.routes.get(self.default_route or "") or next(iter(self.routes.values()))

    @property
    def tokenizer(self) -> Any:
        return self._default().tokenizer

    @property
    def num_threads(self) -> int | None:
        return self._default().num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        for model in self.routes.values():
            model.num_threads = value

    @property
    def max_seq_length(self) -> Any:
        return self._default().max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        for model in self.routes.values():
            if not isinstance(model.max_seq_length, float):  # static routes have no limit
                model.max_seq_length = value

    @property
    def session(self) -> Any:
        return self._default().session

    @property
    def last_info(self) -> EncodeInfo:
        return getattr(self._local, "info", EncodeInfo())

    def _full_dimension(self) -> int | None:
        return self._default()._full_dimension()

    def fingerprint(self) -> str:
        from sentencekit.fingerprint import file_fingerprint

        return file_fingerprint("router", self.compute_dtype,
                                {route: model.fingerprint() for route, model in sorted(self.routes.items())})

    # -- encode -------------------------------------------------------------------------------------
    @pool_aware
    def encode(self, sentences: Any, prompt_name: str | None = None, prompt: str | None = None,
               batch_size: int = 32, show_progress_bar: bool | None = None, device: Any = None,
               truncate_dim: int | None = None, pool: Any = None, chunk_size: int | None = None,
               task: str | None = None, **kwargs: Any) -> Any:
        """``encode`` on the route ``task`` picks (see the ONNX embedder's ``encode`` for the arguments).

        >>> model.encode(["refund?"], task="query").shape                         # doctest: +SKIP
        (1, 256)
        """
        model = self.route(task)
        prompt_text = resolve_prompt(self.prompts, prompt_name, prompt, self.default_prompt_name) or ""
        out = model.encode(sentences, prompt=prompt_text, batch_size=batch_size, show_progress_bar=show_progress_bar,
                           device=device, truncate_dim=truncate_dim if truncate_dim is not None else self.truncate_dim,
                           **kwargs)
        self._local.info = model.last_info
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(routes={ {r: type(m).__name__ for r, m in self.routes.items()} })"


__all__ = ["RoutedSentenceTransformer", "router_entry"]
