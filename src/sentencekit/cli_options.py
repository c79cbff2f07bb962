"""The command-line options that several ``sentencekit`` commands share: the model, device, threads, batch
size and backend. Standard library only, so that ``sentencekit --help`` starts without torch."""

from __future__ import annotations

import argparse
import os

from sentencekit.hub import DEFAULT_MODEL  # stdlib-only module


def add_model_args(p: argparse.ArgumentParser, backend_flag: str = "--backend") -> None:
    """Add ``--model``, ``--device``, ``--threads``, ``--batch-size``, ``--local-files-only`` and the backend
    options (see :func:`add_backend_args`; ``backend_flag`` renames ``--backend`` where a command already
    has one, e.g. ``index build --model-backend``) to the parser of one command."""
    p.add_argument("--model", "-m", default=os.environ.get("SENTENCEKIT_MODEL", DEFAULT_MODEL),
                   help="model folder or Hugging Face id (default: %(default)s; env SENTENCEKIT_MODEL)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (torch intra-op, or ONNX Runtime intra-op with --backend onnx)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: %(default)s)")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face Hub")
    add_backend_args(p, backend_flag)


def add_backend_args(p: argparse.ArgumentParser, flag: str = "--backend") -> None:
    """Add the backend option ``flag`` (stored as ``args.model_backend``: torch or onnx) and
    ``--compute-dtype``."""
    from sentencekit.engines import BACKENDS  # the one registry (torch-free to import)

    p.add_argument(flag, dest="model_backend", choices=sorted(BACKENDS),
                   default=os.environ.get("SENTENCEKIT_BACKEND", "torch"),
                   help="torch, or onnx: ONNX Runtime without torch once the model's export exists "
                        "(default: %(default)s; env SENTENCEKIT_BACKEND)")
    p.add_argument("--compute-dtype", choices=["auto", "float32", "bfloat16", "int8"], default="float32",
                   help="float32 (default); bfloat16 (torch, CPUs with AVX-512 BF16 / AMX); int8 (onnx); auto")
