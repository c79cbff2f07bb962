from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from sentencekit.files import ModelFormatError, read_json, write_json
from sentencekit.modules.base import Module


class Router(Module):
    """Routes inputs through different module lists by task, e.g. one encoder for queries and another
    for documents (asymmetric models). ``encode_query`` picks ``task="query"``, ``encode_document``
    ``task="document"``.

    >>> from sentencekit.modules import Router                                       # doctest: +SKIP
    >>> router = Router.for_query_document([query_encoder], [document_encoder])     # doctest: +SKIP
    """

    st_type = "sentence_transformers.models.Router"
    config_file_name = "router_config.json"
    save_in_root = True
    forward_kwargs = {"task"}

    def __init__(
        self,
        sub_modules: dict[str, list[nn.Module]],
        default_route: str | None = None,
        allow_empty_key: bool = True,
    ) -> None:
        super().__init__()
        if not sub_modules:
            raise ValueError("Router needs at least one route.")
        if default_route is not None and default_route not in sub_modules:
            raise ValueError(f"default_route {default_route!r} is not one of {sorted(sub_modules)}")
        self.sub_modules = nn.ModuleDict({route: nn.Sequential(*mods) for route, mods in sub_modules.items()})
        self.default_route = default_route
        self.allow_empty_key = allow_empty_key

    @classmethod
    def for_query_document(cls, query_modules: list[nn.Module], document_modules: list[nn.Module],
                           default_route: str | None = None, allow_empty_key: bool = True) -> Router:
        return cls({"query": query_modules, "document": document_modules},
                   default_route=default_route, allow_empty_key=allow_empty_key)

    def _route(self, task: str | None) -> str:
        if task is None:
            task = self.default_route
        if task is None:
            if len(self.sub_modules) == 1 and self.allow_empty_key:
                return next(iter(self.sub_modules))
            raise ValueError(
                f"This model routes inputs by task ({', '.join(self.sub_modules)}) and has no default "
                "route: use encode_query / encode_document, or pass task=..."
            )
        if task not in self.sub_modules:
            raise ValueError(f"Unknown task {task!r}; this model's routes are {', '.join(self.sub_modules)}.")
        return task

    def tokenize(self, texts: list[Any], task: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if texts and isinstance(texts[0], dict):  # legacy Asym inputs: {"query": "text"}
            keys = {next(iter(t)) for t in texts}
            if len(keys) != 1:
                raise ValueError(f"All inputs in one batch must use the same route key, got {sorted(keys)}")
            task = keys.pop()
            texts = [next(iter(t.values())) for t in texts]
        route = self._route(task)
        features = self.sub_modules[route][0].tokenize(texts)
        features["task"] = route
        return features

    def forward(self, features: dict[str, Any], task: str | None = None, **kwargs: Any) -> dict[str, Any]:
        route = self._route(task or features.get("task"))
        for module in self.sub_modules[route]:
            features = module(features)
        return features

    @property
    def max_seq_length(self) -> int | float | None:
        """The tightest length limit of the routes (a static route has none: ``inf``)."""
        limits = [getattr(route[0], "max_seq_length", None) for route in self.sub_modules.values()]
        limits = [x for x in limits if x is not None]
        return min(limits) if limits else None

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        for route in self.sub_modules.values():
            if hasattr(route[0], "max_seq_length"):
                route[0].max_seq_length = value

    def get_sentence_embedding_dimension(self) -> int | None:
        route = self.sub_modules[self.default_route or next(iter(self.sub_modules))]
        for module in reversed(list(route)):
            for name in ("get_sentence_embedding_dimension", "get_word_embedding_dimension"):
                dim = getattr(module, name)() if hasattr(module, name) else None
                if dim is not None:  # e.g. SpladePooling knows its width only after a forward
                    return dim
        return None

    def save(self, output_path: str | os.PathLike, safe_serialization: bool = True) -> None:
        from sentencekit.format import type_string

        output_path = Path(output_path)
        types: dict[str, str] = {}
        structure: dict[str, list[str]] = {}
        for route, modules in self.sub_modules.items():
            for idx, module in enumerate(modules):
                module_id = f"{route}_{idx}_{type(module).__name__}"
                types[module_id] = type_string(module)
                structure.setdefault(route, []).append(module_id)
                module.save(output_path / module_id, safe_serialization=safe_serialization)
        write_json(output_path / self.config_file_name, {
            "types": types,
            "structure": structure,
            "parameters": {"default_route": self.default_route, "allow_empty_key": self.allow_empty_key},
        }, indent=4)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> Router:
        from sentencekit.format import load_module

        path = Path(path)
        config_file = path / cls.config_file_name
        if not config_file.is_file():
            config_file = path / "config.json"  # legacy Asym
        config = read_json(config_file, what="Router config")
        try:
            types, structure = config["types"], config["structure"]
        except (KeyError, TypeError):
            raise ModelFormatError(f"{config_file}: a Router config needs 'types' and 'structure'.") from None
        built: dict[str, nn.Module] = {}
        routes: dict[str, list[nn.Module]] = {}
        for route, module_ids in structure.items():
            for module_id in module_ids:
                if module_id not in built:
                    if module_id not in types:
                        raise ModelFormatError(f"{config_file}: module {module_id!r} has no type entry.")
                    built[module_id] = load_module(types[module_id], path / module_id, **kwargs)
                routes.setdefault(route, []).append(built[module_id])
        params = config.get("parameters", {})
        return cls(routes, default_route=params.get("default_route"),
                   allow_empty_key=params.get("allow_empty_key", True))


class Asym(Router):
    """The legacy name of :class:`Router` (older asymmetric models)."""
