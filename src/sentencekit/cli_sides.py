"""The index sides with a model of their own on the ``sentencekit`` command line: the learned-sparse side
(``--sparse MODEL``, a SparseEncoder such as SPLADE) and the late-interaction side (``--multivector MODEL``, a
MultiVectorEncoder such as ColBERT). One record per side (:data:`MODEL_SIDES`) drives, for both: the option,
loading the model on ``--backend`` (refusing a folder of another kind before loading it), the model an index
records, the one-line errors when it is missing, differs from the index's, or the index keeps no such side,
and the ``--fusion-weights`` option of ``search --retrieval hybrid``.

Standard library only at import (``sentencekit --help`` builds these options); models load inside the commands.

>>> parse_fusion_weights("0.3,0.7")
(0.3, 0.7)
>>> parse_fusion_weights("dense=1, multivector=2")
{'dense': 1.0, 'multivector': 2.0}
>>> MODEL_SIDES["multivector"].flag, MODEL_SIDES["multivector"].keyword
('--multivector', 'multivector_model')
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the index API's fusion order (sentencekit.search.hybrid.SIDES, which imports NumPy; a test keeps them equal)
SIDES = ("dense", "sparse", "multivector", "lexical")


def _refuse_non_sparse(spec: Any, name: str) -> str | None:
    # In Python a dense model becomes a CSR SparseEncoder with an untrained head (and a warning), as in
    # sentence-transformers; on the command line its vectors would be written or indexed as if they meant
    # something, so refuse before loading.
    if spec.is_sparse or (spec.layout == "transformers" and spec.is_masked_lm):
        return None
    return (f"--sparse {name} is not a sparse encoder (a {spec.model_type or 'transformer'} model without a "
            "masked-language-model head): its sparse vectors would come from a new, untrained head. Pass a SPLADE "
            "model (a SparseEncoder folder or a *ForMaskedLM one), or train a CSR head on it in Python first "
            "(SparseEncoderTrainer)")


def _refuse_non_multivector(spec: Any, name: str) -> str | None:
    if spec.is_multivector:
        return None
    kind = "SparseEncoder" if spec.is_sparse or spec.is_masked_lm else spec.model_type or "transformer"
    return (f"--multivector {name} is not a multi-vector model (a {kind} model, not a "
            "ColBERT save): its token vectors would not be trained for late interaction. Pass a ColBERT model (a "
            "MultiVectorEncoder, PyLate or Stanford ColBERT folder or Hugging Face id)")


@dataclass(frozen=True)
class ModelSide:
    """One index side that has its own model. ``key``: the manifest entry, the ``--retrieval`` value, the fused
    side's name and the option's ``argparse`` dest; ``flag``: the option; ``title``: the side in messages;
    ``model_kind``: its model in messages; ``example``: what to pass; ``stored``: what the side keeps per
    document; ``family``: ``module:Class`` of the model; ``refusal(spec, name)``: why a folder is not such a
    model (``None``: it is)."""

    key: str
    flag: str
    title: str
    model_kind: str
    example: str
    stored: str
    family: str
    refusal: Callable[[Any, str], str | None]

    @property
    def keyword(self) -> str:
        """The ``EmbeddingIndex.create`` / ``open`` / ``repair`` keyword of the side's model."""
        return f"{self.key}_model"


MODEL_SIDES: dict[str, ModelSide] = {
    "sparse": ModelSide("sparse", "--sparse", "learned-sparse", "sparse model", "a SparseEncoder, e.g. a SPLADE folder",
                        "learned-sparse vectors", "sentencekit.families.sparse:SparseEncoder", _refuse_non_sparse),
    "multivector": ModelSide("multivector", "--multivector", "multi-vector", "multi-vector model",
                             "a MultiVectorEncoder, e.g. a ColBERT folder", "multi-vector token embeddings",
                             "sentencekit.families.multivector:MultiVectorEncoder", _refuse_non_multivector),
}


# -- options ----------------------------------------------------------------------------------------------
def add_side_arg(p: argparse.ArgumentParser, key: str, help_text: str) -> None:
    """Add the option of the side ``key`` (``--sparse MODEL`` / ``--multivector MODEL``) to one command."""
    p.add_argument(MODEL_SIDES[key].flag, dest=key, default=None, metavar="MODEL", help=help_text)


def given_sides(args: argparse.Namespace) -> list[str]:
    """The sides whose option the command line gives, in fusion order."""
    return [key for key in MODEL_SIDES if getattr(args, key, None) is not None]


def parse_fusion_weights(text: str) -> tuple[float, ...] | dict[str, float]:
    """``--fusion-weights``: comma-separated numbers, one per fused side in the order dense, sparse, multivector,
    lexical (of the sides the index keeps), or ``side=number`` pairs (only those sides are fused). Raises
    ``argparse.ArgumentTypeError`` for anything else (argparse prints it as a usage error)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            named = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
            unknown = sorted(set(named) - set(SIDES))
            if unknown:
                raise argparse.ArgumentTypeError(f"unknown side(s) {', '.join(unknown)} in {text!r}; the sides are "
                                                 f"{', '.join(SIDES)}")
            return named
        if parts and not any("=" in p for p in parts):
            return tuple(float(p) for p in parts)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected numbers per side ({','.join(SIDES)} order, e.g. 0.3,0.7) or "
                                     f"side=number pairs (e.g. dense=0.3,sparse=0.7), got {text!r}")


def add_fusion_weights_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--fusion-weights`` to ``search``."""
    p.add_argument("--fusion-weights", type=parse_fusion_weights, default=None, metavar="W[,W...]",
                   help=f"weights of the sides --retrieval hybrid fuses: one number per side in the order "
                        f"{', '.join(SIDES)} (of the sides the index keeps; e.g. 0.3,0.7), or side=number pairs "
                        "(e.g. dense=0.3,multivector=0.7: only those sides are fused) (default: equal weights)")


def check_fusion_weights(weights: tuple[float, ...] | dict[str, float] | None,
                         manifest: dict[str, Any]) -> tuple[float, ...] | dict[str, float] | None:
    """``--fusion-weights`` checked against the sides the index's hybrid search fuses (one-line ``ValueError``
    in the option's own words when the count differs); side=number pairs pass as they are."""
    if not isinstance(weights, tuple):
        return weights
    from sentencekit.search.hybrid import hybrid_sides

    sides = list(hybrid_sides("hybrid", None, has_sparse=has_side("sparse", manifest),
                              has_multivector=has_side("multivector", manifest),
                              has_lexical=isinstance(manifest.get("lexical"), dict)))
    if len(weights) != len(sides):
        raise ValueError(f"--fusion-weights: got {len(weights)} number(s) for the {len(sides)} sides this index fuses "
                         f"({', '.join(sides)}); pass one per side in that order, or side=number pairs (e.g. "
                         f"{','.join(f'{side}=1' for side in sides)})")
    return weights


# -- loading ----------------------------------------------------------------------------------------------
def load_side_model(key: str, name: str, args: argparse.Namespace) -> Any:
    """The model ``name`` of the side ``key`` on ``--backend`` (as the dense model is loaded). A local folder is
    loaded by its absolute path, so that an index records a path that still resolves from another directory.
    Raises a one-line ``ValueError`` (before loading anything) when the folder is not that kind of model."""
    from sentencekit.engines import load_on_backend
    from sentencekit.hub import resolve_model
    from sentencekit.spec.model_spec import read_spec

    side = MODEL_SIDES[key]
    local = Path(name).expanduser()
    source = str(local.resolve()) if local.is_dir() else name
    reason = side.refusal(read_spec(resolve_model(source, local_files_only=args.local_files_only).path), name)
    if reason:
        raise ValueError(reason)
    module, cls = side.family.split(":")
    options = {"device": args.device, "local_files_only": args.local_files_only, "num_threads": args.threads,
               "compute_dtype": args.compute_dtype}
    return load_on_backend(getattr(importlib.import_module(module), cls), source, args.model_backend,
                           what=side.model_kind, **options)[0]


def load_given_models(args: argparse.Namespace) -> dict[str, Any]:
    """``{side: model}`` of the side options the command line gives (for a new or managed index)."""
    return {key: load_side_model(key, getattr(args, key), args) for key in given_sides(args)}


def index_keywords(models: Mapping[str, Any]) -> dict[str, Any]:
    """``{side: model}`` as ``EmbeddingIndex`` / ``build_index`` keywords (``sparse_model=...``)."""
    return {MODEL_SIDES[key].keyword: model for key, model in models.items()}


def has_side(key: str, manifest: dict[str, Any]) -> bool:
    """Whether the index whose manifest this is keeps the side ``key``."""
    return isinstance(manifest.get(key), dict)


def recorded_model_name(key: str, manifest: dict[str, Any]) -> str | None:
    """The ``name_or_path`` of the side's model the index records (``None``: no such side, or no name)."""
    entry = manifest.get(key)
    if not isinstance(entry, dict):
        return None
    return (entry.get("model") or {}).get("name_or_path")


def side_model_for_index(key: str, args: argparse.Namespace, index: str, manifest: dict[str, Any], *,
                         required: bool, what: str) -> Any:
    """The model of the side ``key`` to open the index at ``index`` with: the side's option if given (checked
    against the index's record: one-line ``ValueError`` naming both models); else, on an index with that side and
    when ``required``, the model the manifest records if it resolves locally, else a one-line ``ValueError``
    saying to pass the option. ``None`` when no model is needed or given. ``what``: the action, for messages."""
    side, given = MODEL_SIDES[key], getattr(args, key, None)
    if given is not None:
        model = load_side_model(key, given, args)
        check_side_match(key, index, manifest, model)
        return model
    if not (required and has_side(key, manifest)):
        return None
    name = recorded_model_name(key, manifest)
    folder = _resolves_locally(name) if name else None
    if folder is None:
        raise ValueError(f"{index} keeps a {side.title} side built with the {side.model_kind} {name!r}, which is not "
                         f"available here; pass {side.flag} MODEL (that model) to {what}")
    return load_side_model(key, name, args)


def models_for_index(args: argparse.Namespace, index: str, manifest: dict[str, Any], *,
                     required: Callable[[str], bool], what: str) -> dict[str, Any]:
    """``{side: model}`` to open the index at ``index`` with (:func:`side_model_for_index` for each side;
    ``required(side)``: whether that side's model is needed); sides without one are left out."""
    models = {key: side_model_for_index(key, args, index, manifest, required=required(key), what=what)
              for key in MODEL_SIDES}
    return {key: model for key, model in models.items() if model is not None}


def _resolves_locally(name: str) -> Path | None:
    from sentencekit.hub import resolve_model

    try:
        return resolve_model(name, local_files_only=True).path
    except (OSError, ValueError):
        return None


def check_side_match(key: str, index: str, manifest: dict[str, Any], model: Any) -> None:
    """One-line ``ValueError`` when ``model`` is not the model of the side ``key`` the index at ``index`` records
    (same fingerprint); nothing for an index without that side."""
    if not has_side(key, manifest):
        return
    from sentencekit.search.segment_sides import model_info

    side = MODEL_SIDES[key]
    recorded, given = manifest[key]["model"], model_info(model)
    if given["fingerprint"] != recorded.get("fingerprint"):
        raise ValueError(f"{index} was built with the {side.model_kind} {recorded.get('name_or_path')!r} "
                         f"(fingerprint {str(recorded.get('fingerprint'))[:8]}), not {given['name_or_path']!r} "
                         f"(fingerprint {given['fingerprint'][:8]}); pass {side.flag} with the index's "
                         f"{side.model_kind}, or build a new index for this one")


def needs_model_error(key: str) -> ValueError:
    """The error for ``--retrieval KEY`` with neither the side's option nor ``--index``."""
    side = MODEL_SIDES[key]
    return ValueError(f"--retrieval {key} needs a {side.model_kind}: pass {side.flag} MODEL ({side.example}), or "
                      "--index INDEX of an index built with one")


def no_side_error(key: str, index: str, manifest: dict[str, Any]) -> ValueError:
    """The error for searching the side ``key`` of an index that does not keep it."""
    side = MODEL_SIDES[key]
    n = manifest.get("counts", {}).get("documents", 0)
    others = [other for other in MODEL_SIDES if other != key and has_side(other, manifest)]
    return ValueError(f"{index} keeps no {side.title} side; add one with `sentencekit index build CORPUS --out "
                      f"{index} {side.flag} MODEL` (encodes its {n} documents), or search with --retrieval "
                      f"{'|'.join(['dense', 'lexical', *others, 'hybrid'])}")


def search_models(args: argparse.Namespace, index: str, manifest: dict[str, Any], retrieval: str) -> dict[str, Any]:
    """``{side: model}`` for ``sentencekit search --index INDEX --retrieval RETRIEVAL``: a side searched alone,
    or one whose option is given, must be kept by the index (:func:`no_side_error`); its model is needed for that
    side's retrieval, and for hybrid unless ``--fusion-weights`` names sides without it."""
    for key in MODEL_SIDES:
        if (retrieval == key or getattr(args, key, None) is not None) and not has_side(key, manifest):
            raise no_side_error(key, index, manifest)
    weights = args.fusion_weights

    def required(key: str) -> bool:
        return retrieval == key or (retrieval == "hybrid" and (not isinstance(weights, dict) or key in weights))

    return models_for_index(args, index, manifest, required=required, what="search it")


__all__ = ["SIDES", "MODEL_SIDES", "ModelSide", "add_side_arg", "given_sides", "add_fusion_weights_arg",
           "parse_fusion_weights", "check_fusion_weights", "load_side_model", "load_given_models", "index_keywords",
           "has_side", "recorded_model_name", "side_model_for_index", "models_for_index", "check_side_match",
           "needs_model_error", "no_side_error", "search_models"]
