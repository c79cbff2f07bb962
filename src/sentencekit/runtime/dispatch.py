"""``sentencekit.SentenceTransformer`` / ``sentencekit.CrossEncoder`` as users call them: one name, two
backends. ``backend="torch"`` (the default) builds the torch ``nn.Module`` classes of
``sentencekit.embedder`` / ``sentencekit.reranker``; ``backend="onnx"`` builds the ONNX Runtime classes
of ``sentencekit.runtime``, without importing torch when the model's export already exists.

The names behave like the torch classes otherwise: ``isinstance`` accepts a model of either backend,
attributes and subclassing (``class MyModel(SentenceTransformer)``) go to the torch class.

>>> from sentencekit import SentenceTransformer
>>> SentenceTransformer                                    # doctest: +ELLIPSIS
<sentencekit model class SentenceTransformer (backends: torch, onnx)>
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

BACKENDS = ("torch", "onnx")


class BackendDispatch:
    """A callable that stands for a model class and picks the implementation by ``backend``."""

    def __init__(self, name: str, torch_path: str, onnx_path: str) -> None:
        self.__name__ = self.__qualname__ = name
        self._torch_path = torch_path
        self._onnx_path = onnx_path

    @staticmethod
    def _load(path: str) -> type:
        module, _, attr = path.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    @property
    def torch_class(self) -> type:
        return self._load(self._torch_path)

    @property
    def onnx_class(self) -> type:
        return self._load(self._onnx_path)

    def __call__(self, *args: Any, backend: str = "torch", **kwargs: Any) -> Any:
        if backend == "onnx":
            return self.onnx_class(*args, **kwargs)
        if backend != "torch":
            raise ValueError(f"Unknown backend {backend!r}; choose from {', '.join(BACKENDS)}.")
        return self.torch_class(*args, **kwargs)

    def _loaded(self) -> tuple[type, ...]:
        # Only classes already imported can have instances: checking never imports torch.
        out = []
        for path in (self._torch_path, self._onnx_path):
            module, _, attr = path.rpartition(".")
            if module in sys.modules:
                out.append(getattr(sys.modules[module], attr))
        return tuple(out)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._loaded())

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._loaded())

    def __mro_entries__(self, bases: tuple) -> tuple[type]:
        return (self.torch_class,)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.torch_class, name)

    def __repr__(self) -> str:
        return f"<sentencekit model class {self.__name__} (backends: {', '.join(BACKENDS)})>"

    def __reduce__(self) -> str:
        return self.__name__  # pickled by reference: sentencekit.<name>


SentenceTransformer = BackendDispatch("SentenceTransformer", "sentencekit.embedder.SentenceTransformer",
                                      "sentencekit.runtime.embedder.OnnxSentenceTransformer")
CrossEncoder = BackendDispatch("CrossEncoder", "sentencekit.reranker.CrossEncoder",
                               "sentencekit.runtime.reranker.OnnxCrossEncoder")
SentenceTransformer.__module__ = CrossEncoder.__module__ = "sentencekit"
