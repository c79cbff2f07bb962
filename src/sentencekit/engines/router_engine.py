"""Router (Asym) models on the torch-free backends: each route (e.g. a static table for queries and a
transformer for documents) runs on an engine of its own kind, built from the route's part of the
:class:`~sentencekit.spec.model_spec.ModelSpec` (the route's modules, then the modules after the Router);
``task`` picks the route, as the torch ``Router`` module does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentencekit.engines.protocol import Engine, Tokenized, check_num_threads
from sentencekit.spec.model_spec import ModelSpec


class RouterEngine(Engine):
    """One engine per route (see the module docstring)."""

    def __init__(self, spec: ModelSpec, routes: dict[str, Engine]) -> None:
        if spec.router is None:
            raise ValueError(f"{spec.folder} has no Router module.")
        if spec.router.index != 0:
            raise ValueError(f"{spec.folder}: the torch-free path runs models that start with a Router; this one "
                             f"has it at position {spec.router.index}. Use backend='torch'.")
        self.spec = spec
        self.route_engines = routes
        self.default_route = spec.router.default_route
        self.allow_empty_key = spec.router.allow_empty_key
        kinds = {e.backend for e in routes.values()}
        self.backend = "onnx" if "onnx" in kinds else next(iter(kinds))
        self.compute_dtype = next((getattr(e, "compute_dtype", "float32") for e in routes.values()
                                   if e.backend == "onnx"), "float32")

    def route(self, task: str | None = None) -> Engine:
        """The engine of route ``task`` (default: the default route)."""
        if task is None:
            task = self.default_route
        if task is None:
            if len(self.route_engines) == 1 and self.allow_empty_key:
                return next(iter(self.route_engines.values()))
            raise ValueError(f"This model routes inputs by task ({', '.join(self.route_engines)}) and has no default "
                             "route: use encode_query / encode_document, or pass task=...")
        if task not in self.route_engines:
            raise ValueError(f"Unknown task {task!r}; this model's routes are {', '.join(self.route_engines)}.")
        return self.route_engines[task]

    def _default(self) -> Engine:
        return self.route_engines.get(self.default_route or "") or next(iter(self.route_engines.values()))

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(self.route_engines)

    def tokenize(self, items: list[Any], task: str | None = None) -> Tokenized:
        return self.route(task).tokenize(items)

    def run(self, tokenized: Tokenized, indices: np.ndarray, *, outputs: frozenset[str], prompt_length: int = 0,
            task: str | None = None, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.route(task).run(tokenized, indices, outputs=outputs, prompt_length=prompt_length, kwargs=kwargs)

    @property
    def batch_tokens_per_text(self) -> int | None:  # type: ignore[override]
        return self._default().batch_tokens_per_text

    @property
    def max_seq_length(self) -> Any:
        """The tightest length limit of the routes (a static route has none: ``inf``), as the torch Router."""
        limits = [e.max_seq_length for e in self.route_engines.values() if e.max_seq_length is not None]
        return min(limits) if limits else None

    def max_seq_length_for(self, task: str | None) -> Any:
        return self.route(task).max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        for engine in self.route_engines.values():
            if not isinstance(engine.max_seq_length, float):  # static routes have no limit
                engine.max_seq_length = value

    @property
    def include_prompt(self) -> bool:
        return self._default().include_prompt

    def prompt_length(self, prompt: str, task: str | None = None) -> int:
        return self.route(task).prompt_length(prompt)

    @property
    def tokenizer(self) -> Any:
        return self._default().tokenizer

    @property
    def do_lower_case(self) -> bool:
        return self._default().do_lower_case

    @property
    def session(self) -> Any:
        return getattr(self._default(), "session", None)

    @property
    def num_threads(self) -> int | None:
        return self._default().num_threads

    @num_threads.setter
    def num_threads(self, value: int | None) -> None:
        check_num_threads(value)
        for engine in self.route_engines.values():
            engine.num_threads = value

    def dimension(self) -> int | None:
        return self._default().dimension()

    def fingerprint(self) -> str:
        from sentencekit.fingerprint import file_fingerprint

        return file_fingerprint("router", self.compute_dtype,
                                {route: e.fingerprint() for route, e in sorted(self.route_engines.items())})

    def describe(self) -> str:
        return "routes=" + str({r: type(e).__name__ for r, e in self.route_engines.items()})


__all__ = ["RouterEngine"]
