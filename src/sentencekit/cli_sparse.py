"""The learned-sparse (SPLADE) parts of the ``sentencekit`` command line: the ``--sparse MODEL`` and
``--fusion-weights`` options, loading the sparse model (given, or the one an index records), the one-line
errors when it is missing or differs from the index's, and ``sentencekit encode --sparse``.

Standard library only at import (``sentencekit --help`` builds these options); models load inside the commands.

>>> parse_fusion_weights("0.3,0.7")
(0.3, 0.7)
>>> parse_fusion_weights("dense=1, sparse=2")
{'dense': 1.0, 'sparse': 2.0}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SIDES = ("dense", "sparse", "lexical")  # the index API's fusion order (sentencekit.search.hybrid.SIDES)


# -- options ----------------------------------------------------------------------------------------------
def add_sparse_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    """Add ``--sparse MODEL`` (a SparseEncoder folder or Hugging Face id) to one command."""
    p.add_argument("--sparse", default=None, metavar="MODEL", help=help_text)


def parse_fusion_weights(text: str) -> tuple[float, ...] | dict[str, float]:
    """``--fusion-weights``: comma-separated numbers, one per fused side in the order dense, sparse, lexical
    (of the sides the index keeps), or ``side=number`` pairs (only those sides are fused). Raises
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
    raise argparse.ArgumentTypeError(f"expected numbers per side (dense,sparse,lexical order, e.g. 0.3,0.7) or "
                                     f"side=number pairs (e.g. dense=0.3,sparse=0.7), got {text!r}")


def add_fusion_weights_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--fusion-weights`` to ``search``."""
    p.add_argument("--fusion-weights", type=parse_fusion_weights, default=None, metavar="W[,W...]",
                   help="weights of the sides --retrieval hybrid fuses: one number per side in the order dense, "
                        "sparse, lexical (of the sides the index keeps; e.g. 0.3,0.7), or side=number pairs "
                        "(e.g. dense=0.3,sparse=0.7: only those sides are fused) (default: equal weights)")


def check_fusion_weights(weights: tuple[float, ...] | dict[str, float] | None,
                         manifest: dict[str, Any]) -> tuple[float, ...] | dict[str, float] | None:
    """``--fusion-weights`` checked against the sides the index's hybrid search fuses (one-line ``ValueError``
    in the option's own words when the count differs); side=number pairs pass as they are."""
    if not isinstance(weights, tuple):
        return weights
    from sentencekit.search.hybrid import hybrid_sides

    sides = list(hybrid_sides("hybrid", None, has_sparse=has_sparse_side(manifest),
                              has_lexical=isinstance(manifest.get("lexical"), dict)))
    if len(weights) != len(sides):
        raise ValueError(f"--fusion-weights: got {len(weights)} number(s) for the {len(sides)} sides this index fuses "
                         f"({', '.join(sides)}); pass one per side in that order, or side=number pairs (e.g. "
                         f"{','.join(f'{side}=1' for side in sides)})")
    return weights


# -- loading ----------------------------------------------------------------------------------------------
def load_sparse(name: str, args: argparse.Namespace) -> Any:
    """The ``SparseEncoder`` ``name`` on ``--backend`` (as the dense model is loaded). A local folder is loaded by
    its absolute path, so that an index records a path that still resolves from another directory."""
    from sentencekit.engines import load_on_backend
    from sentencekit.families.sparse import SparseEncoder
    from sentencekit.hub import resolve_model
    from sentencekit.spec.model_spec import read_spec

    local = Path(name).expanduser()
    source = str(local.resolve()) if local.is_dir() else name
    # In Python a dense model becomes a CSR SparseEncoder with an untrained head (and a warning), as in
    # sentence-transformers; on the command line its vectors would be written or indexed as if they meant
    # something, so refuse before loading.
    spec = read_spec(resolve_model(source, local_files_only=args.local_files_only).path)
    if not (spec.is_sparse or (spec.layout == "transformers" and spec.is_masked_lm)):
        raise ValueError(f"--sparse {name} is not a sparse encoder (a {spec.model_type or 'transformer'} model "
                         "without a masked-language-model head): its sparse vectors would come from a new, "
                         "untrained head. Pass a SPLADE model (a SparseEncoder folder or a *ForMaskedLM one), "
                         "or train a CSR head on it in Python first (SparseEncoderTrainer)")
    options = {"device": args.device, "local_files_only": args.local_files_only, "num_threads": args.threads,
               "compute_dtype": args.compute_dtype}
    return load_on_backend(SparseEncoder, source, args.model_backend, what="sparse model", **options)[0]


def recorded_sparse_name(manifest: dict[str, Any]) -> str | None:
    """The ``name_or_path`` of the sparse model an index records (``None``: no sparse side, or no name)."""
    entry = manifest.get("sparse")
    if not isinstance(entry, dict):
        return None
    return (entry.get("model") or {}).get("name_or_path")


def has_sparse_side(manifest: dict[str, Any]) -> bool:
    return isinstance(manifest.get("sparse"), dict)


def sparse_for_index(args: argparse.Namespace, index: str, manifest: dict[str, Any], *, required: bool,
                     what: str) -> Any:
    """The sparse model to open the index at ``index`` with: ``--sparse`` if given (checked against the index's
    record: one-line ``ValueError`` naming both models); else, on an index with a sparse side and when
    ``required``, the model the manifest records if it resolves locally, else a one-line ``ValueError`` saying
    to pass ``--sparse``. ``None`` when no sparse model is needed or given. ``what``: the action, for messages."""
    if args.sparse is not None:
        model = load_sparse(args.sparse, args)
        check_sparse_match(index, manifest, model)
        return model
    if not (required and has_sparse_side(manifest)):
        return None
    name = recorded_sparse_name(manifest)
    folder = _resolves_locally(name, cache_folder=None) if name else None
    if folder is None:
        raise ValueError(f"{index} keeps a learned-sparse side built with the sparse model {name!r}, which is not "
                         f"available here; pass --sparse MODEL (that model) to {what}")
    return load_sparse(name, args)


def _resolves_locally(name: str, cache_folder: Any) -> Path | None:
    from sentencekit.hub import resolve_model

    try:
        return resolve_model(name, cache_folder=cache_folder, local_files_only=True).path
    except (OSError, ValueError):
        return None


def check_sparse_match(index: str, manifest: dict[str, Any], model: Any) -> None:
    """One-line ``ValueError`` when ``model`` is not the sparse model the index at ``index`` records (same
    fingerprint); nothing for an index without a sparse side."""
    if not has_sparse_side(manifest):
        return
    from sentencekit.search.segment_sides import model_info

    recorded, given = manifest["sparse"]["model"], model_info(model)
    if given["fingerprint"] != recorded.get("fingerprint"):
        raise ValueError(f"{index} was built with the sparse model {recorded.get('name_or_path')!r} (fingerprint "
                         f"{str(recorded.get('fingerprint'))[:8]}), not {given['name_or_path']!r} (fingerprint "
                         f"{given['fingerprint'][:8]}); pass --sparse with the index's sparse model, or build a "
                         "new index for this one")


def no_sparse_side(index: str, n: int) -> ValueError:
    """The error for a sparse search on an index without a sparse side."""
    return ValueError(f"{index} keeps no learned-sparse side; add one with `sentencekit index build CORPUS --out "
                      f"{index} --sparse MODEL` (encodes its {n} documents), or search with --retrieval dense|"
                      "lexical|hybrid")


# -- encode --sparse ----------------------------------------------------------------------------------------
def cmd_encode_sparse(args: argparse.Namespace, texts_of: Any) -> int:
    """``sentencekit encode INPUT -o OUT.npz|OUT.jsonl --sparse MODEL``: encode each text with the sparse model
    and write the sparse vectors (format: :mod:`sentencekit.sparse_formats`). ``texts_of(args)`` reads INPUT."""
    from sentencekit.cli_notes import truncation_notes
    from sentencekit.sparse_formats import check_sparse_output, row_entries, write_sparse

    check_sparse_output(args.output)  # before loading anything
    dense_only = [flag for flag, used in (("--normalize", args.normalize), ("--truncate-dim", args.truncate_dim),
                                          ("--precision", args.precision != "float32")) if used]
    if dense_only:
        verb = "applies" if len(dense_only) == 1 else "apply"
        raise ValueError(f"{', '.join(dense_only)} {verb} to dense embeddings; a sparse encoding is written as the "
                         "model's term weights (drop them, or use --max-active-dims to keep fewer terms)")
    texts = texts_of(args)
    model = load_sparse(args.sparse, args)
    with truncation_notes("texts"):
        output = model.encode(texts, batch_size=args.batch_size, prompt_name=args.prompt_name,
                              max_active_dims=args.max_active_dims,
                              show_progress_bar=not args.quiet and len(texts) > args.batch_size)
    entries = row_entries(output, len(texts))
    vocab = int(model.get_embedding_dimension())
    write_sparse(args.output, entries, vocab)
    active = sum(len(i) for i, _ in entries) / max(len(entries), 1)
    print(f"Wrote {args.output}: {len(entries)} x {vocab} sparse, {active:.1f} active terms per text on average",
          file=sys.stderr)
    return 0


__all__ = ["add_sparse_arg", "add_fusion_weights_arg", "parse_fusion_weights", "check_fusion_weights",
           "load_sparse", "sparse_for_index", "check_sparse_match", "recorded_sparse_name", "has_sparse_side",
           "no_sparse_side", "cmd_encode_sparse"]
