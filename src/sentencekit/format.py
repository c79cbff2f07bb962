"""The sentence-transformers on-disk format: ``modules.json`` <-> module classes, and the model-level
``config_sentence_transformers.json``.

Type strings of both generations resolve here: v5 (``sentence_transformers.models.Pooling``) and v6
(``sentence_transformers.sentence_transformer.modules.pooling.Pooling``, ``...base.modules.transformer.
Transformer``). We write the v5 strings and v5 config keys, which sentence-transformers v5 *and* v6 load,
except for what only v6 has (a fill-mask ``Transformer``, ``SpladePooling``): 6.2's strings and keys.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sentencekit.files import ModelFormatError, write_json
from sentencekit.spec.model_spec import FOREIGN_KINDS, MODEL_CONFIG_FILE, MODULES_FILE, ModuleEntry


def _classes() -> dict[str, type]:
    from sentencekit import modules as m

    return {"Transformer": m.Transformer, "Pooling": m.Pooling, "Dense": m.Dense, "Normalize": m.Normalize,
            "StaticEmbedding": m.StaticEmbedding, "Router": m.Router, "Asym": m.Asym,
            "SpladePooling": m.SpladePooling, "SparseStaticEmbedding": m.SparseStaticEmbedding,
            "SparseAutoEncoder": m.SparseAutoEncoder, "MLMTransformer": m.Transformer,
            "MultiVectorMask": m.MultiVectorMask, "HierarchicalTokenPooling": m.HierarchicalTokenPooling,
            "CLIPModel": m.CLIPModel, "LogitScore": m.LogitScore}


#: legacy class names that load as another class with a default: name -> ``load`` keyword arguments.
#: ``MLMTransformer`` (sentence-transformers 5.x sparse encoders) is a ``Transformer`` whose task is
#: fill-mask when its config does not say; it is saved again under 6.2's ``Transformer`` string.
_LEGACY_LOAD_KWARGS = {"MLMTransformer": {"saved_task": "fill-mask"}}


def resolve_type(type_str: str, *, folder: Path | None = None, trust_remote_code: bool = False) -> type:
    """Map a ``modules.json`` type string to a class; custom code only with ``trust_remote_code``."""
    if not isinstance(type_str, str) or not type_str:
        raise ModelFormatError(f"Invalid module type {type_str!r} in {MODULES_FILE}")
    classes = _classes()
    if type_str in FOREIGN_KINDS:  # another library's name for one of sentence-transformers' modules (PyLate)
        return classes[FOREIGN_KINDS[type_str]]
    parts = type_str.split(".")
    if parts[0] in ("sentence_transformers", "sentencekit"):
        # v5 strings end in the module file named like the class (models.Pooling), v6 strings in
        # "module.Class" (modules.pooling.Pooling); both end with the class name.
        cls = classes.get(parts[-1])
        if cls is not None:
            return cls
        raise ModelFormatError(
            f"Unknown module type {type_str!r}: sentencekit implements {', '.join(sorted(classes))}. "
            "This model uses a sentence-transformers module that is not supported yet."
        )
    if not trust_remote_code:
        raise ModelFormatError(
            f"Module type {type_str!r} is custom code. It is not imported unless you pass "
            "trust_remote_code=True (only do that for models whose code you trust)."
        )
    return _import_custom(type_str, folder)


def _import_custom(type_str: str, folder: Path | None) -> type:
    module_name, _, class_name = type_str.rpartition(".")
    if folder is not None:
        file = folder / f"{module_name.replace('.', os.sep)}.py"
        if file.is_file():
            spec = importlib.util.spec_from_file_location(f"sentencekit_remote.{module_name}", file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return getattr(module, class_name)
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelFormatError(f"Cannot import custom module type {type_str!r}: {exc}") from None


def type_string(module: nn.Module) -> str:
    """The type string written to modules.json: sentence-transformers' own string for our classes."""
    st_type = getattr(module, "st_type", "")  # an instance may choose (a fill-mask Transformer: 6.2's string)
    if isinstance(st_type, str) and st_type:
        return st_type
    return f"{type(module).__module__}.{type(module).__qualname__}"


def load_module(type_str: str, folder: Path, *, trust_remote_code: bool = False, **kwargs: Any) -> nn.Module:
    cls = resolve_type(type_str, folder=folder, trust_remote_code=trust_remote_code)
    from sentencekit.modules.base import Module

    if issubclass(cls, Module):
        legacy = _LEGACY_LOAD_KWARGS.get(type_str.rsplit(".", 1)[-1], {})
        return cls.load(folder, trust_remote_code=trust_remote_code, **legacy, **kwargs)
    return cls.load(str(folder))  # a custom module following sentence-transformers' contract


def load_modules(entries: Sequence[ModuleEntry], *, trust_remote_code: bool = False,
                 **kwargs: Any) -> tuple[list[nn.Module], dict[str, list[str]]]:
    """Build the modules of a model from its spec's entries (see :func:`sentencekit.spec.read_spec`).
    Returns ``(modules, {module name: forward kwargs})``."""
    modules, module_kwargs = [], {}
    for entry in entries:
        modules.append(load_module(entry.type, entry.path, trust_remote_code=trust_remote_code, **kwargs))
        if entry.kwargs:
            module_kwargs[str(len(modules) - 1)] = list(entry.kwargs)
    return modules, module_kwargs


def save_modules(modules: list[nn.Module], folder: Path, *, safe_serialization: bool = True,
                 module_kwargs: dict[str, list[str]] | None = None) -> None:
    entries = []
    for idx, module in enumerate(modules):
        in_root = idx == 0 and getattr(module, "save_in_root", False)
        path = "" if in_root else f"{idx}_{type(module).__name__}"
        module_folder = folder / path
        module_folder.mkdir(parents=True, exist_ok=True)
        module.save(str(module_folder), safe_serialization=safe_serialization)
        entry = {"idx": idx, "name": str(idx), "path": path, "type": type_string(module)}
        kwargs = sorted(getattr(module, "forward_kwargs", set()))
        if module_kwargs and module_kwargs.get(str(idx)):
            kwargs = module_kwargs[str(idx)]
        if kwargs:
            entry["kwargs"] = kwargs
        entries.append(entry)
    write_json(folder / MODULES_FILE, entries, indent=2)


_MODEL_FILE = re.compile(
    r"^(modules\.json|config.*\.json|.*\.safetensors|.*\.safetensors\.index\.json|pytorch_model.*\.bin"
    r"|.*_config\.json|tokenizer.*|special_tokens_map\.json|vocab\..*|merges\.txt|.*\.model|added_tokens\.json"
    r"|README\.md|chat_template\.jinja|onnx|openvino|\d+_\w+|\w+_\d+_\w+)$"
)


def is_foreign_entry(name: str) -> bool:
    """True for a file or folder in a model folder that a model save does not own (a user's notes,
    training checkpoints), which a new save over that folder must keep; stale model files are dropped."""
    return not _MODEL_FILE.match(name)


def write_model_config(folder: Path, config: dict[str, Any]) -> None:
    write_json(folder / MODEL_CONFIG_FILE, config, indent=2, sort_keys=True)
