"""The command-line options that several ``sentencekit`` commands share: the model, device, threads, batch
size, backend and text encoding. Standard library only, so that ``sentencekit --help`` starts without torch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from sentencekit.hub import DEFAULT_MODEL  # stdlib-only module

#: what ``index build --backend`` meant before it picked the model backend (now ``--index-kind``)
LEGACY_INDEX_KINDS = ("exact", "hnsw")


def resolve_default_model(args: argparse.Namespace, index: str | None) -> None:
    """Fill ``args.model`` when ``--model`` was not given: the embedding model the index at ``index`` records
    (when there is one and the model resolves locally: an index built with a CLIP or a fine-tuned model is
    searched with that model, not the default), else ``$SENTENCEKIT_MODEL``, else the default model."""
    if getattr(args, "model", "") is not None:
        return
    recorded = None
    if index is not None:
        from sentencekit.search.storage import manifest_path, read_manifest

        if manifest_path(Path(index)).exists():
            recorded = ((read_manifest(Path(index)).get("model") or {}).get("name_or_path"))
    if recorded and _resolves_locally(recorded):
        args.model = recorded
    else:
        args.model = os.environ.get("SENTENCEKIT_MODEL", DEFAULT_MODEL)


def _resolves_locally(name: str) -> bool:
    from sentencekit.hub import resolve_model

    try:
        resolve_model(name, local_files_only=True)
    except (OSError, ValueError):
        return False
    return True


def add_model_args(p: argparse.ArgumentParser, *, legacy_index_kind: bool = False,
                   model_backend_alias: bool = False) -> None:
    """Add ``--model``, ``--device``, ``--threads``, ``--batch-size``, ``--local-files-only`` and the backend
    options (see :func:`add_backend_args`) to the parser of one command."""
    # None: chosen after parsing (resolve_default_model): an index's own model, else the default
    p.add_argument("--model", "-m", default=None,
                   help=f"model folder or Hugging Face id (default: the model an existing index records, else "
                        f"env SENTENCEKIT_MODEL, else {DEFAULT_MODEL})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (torch intra-op, or ONNX Runtime intra-op)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: %(default)s)")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face Hub")
    add_backend_args(p, legacy_index_kind=legacy_index_kind, model_backend_alias=model_backend_alias)


def backend_choices() -> tuple[str, ...]:
    """``auto`` and every registered backend (the one registry, torch-free to import)."""
    from sentencekit.engines import BACKENDS

    return ("auto", *sorted(BACKENDS))


class _BackendAction(argparse.Action):
    """``--backend`` (and its deprecated spellings): checks the value, and for one release still accepts
    ``index build --backend exact|hnsw`` (the index kind, now ``--index-kind``) and ``--model-backend``,
    each with a one-line deprecation note."""

    def __init__(self, *args: Any, legacy_index_kind: bool = False, **kwargs: Any) -> None:
        self.legacy_index_kind = legacy_index_kind
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: str | None = None) -> None:
        if self.legacy_index_kind and value in LEGACY_INDEX_KINDS and option_string == "--backend":
            print(f"sentencekit: warning: `--backend {value}` for the index kind is deprecated and stops working in "
                  f"the next release; use `--index-kind {value}` (--backend now picks the model backend: "
                  f"{', '.join(backend_choices())}).", file=sys.stderr)
            namespace.index_kind = value
            return
        if self.legacy_index_kind and value == "auto" and option_string == "--backend":
            # the one old value whose meaning changed silently: say so for one release
            print("sentencekit: note: --backend auto now picks the model backend; an index kind chosen by size "
                  "is `--index-kind auto`.", file=sys.stderr)
        if value not in backend_choices():
            parser.error(f"argument --backend: invalid choice: {value!r} (choose from "
                         f"{', '.join(backend_choices())})")
        if option_string == "--model-backend":
            print("sentencekit: warning: --model-backend is deprecated and stops working in the next release; "
                  f"use `--backend {value}`.", file=sys.stderr)
        setattr(namespace, self.dest, value)


def add_backend_args(p: argparse.ArgumentParser, *, legacy_index_kind: bool = False,
                     model_backend_alias: bool = False) -> None:
    """Add ``--backend`` (stored as ``args.model_backend``: auto, torch or onnx; ``auto`` is resolved by
    :func:`sentencekit.engines.load_on_backend`, as in ``sentencekit serve``) and ``--compute-dtype``.
    For one release, with a deprecation note: ``legacy_index_kind``: the command used to take ``--backend
    exact|hnsw`` for its index kind; ``model_backend_alias``: it used to spell ``--backend`` ``--model-backend``."""
    p.add_argument("--backend", dest="model_backend", action=_BackendAction, legacy_index_kind=legacy_index_kind,
                   default=os.environ.get("SENTENCEKIT_BACKEND", "auto"), metavar="{auto,onnx,torch}",
                   help="auto (default: ONNX Runtime on the CPU when the model exports and no CUDA GPU is in "
                        "use, else torch), torch, or onnx (torch-free once the model's export exists); env "
                        "SENTENCEKIT_BACKEND")
    if model_backend_alias:  # deprecated spelling: still accepted, not advertised
        p.add_argument("--model-backend", dest="model_backend", action=_BackendAction, default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
    p.add_argument("--compute-dtype", choices=["auto", "float32", "bfloat16", "int8"], default="float32",
                   help="float32 (default); bfloat16 (torch, CPUs with AVX-512 BF16 / AMX); int8 (onnx); auto")


def add_encoding_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--encoding`` to a command that reads text files (CSV, JSON lines, plain text; not Parquet)."""
    p.add_argument("--encoding", default="utf-8",
                   help="text encoding of the input file, e.g. latin-1 or cp1252 (default: %(default)s)")
