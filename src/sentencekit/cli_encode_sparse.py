"""``sentencekit encode --sparse MODEL``: texts encoded by a sparse encoder (SPLADE), written as sparse vectors
(format: :mod:`sentencekit.sparse_formats`). Standard library only at import."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_encode_sparse(args: argparse.Namespace, texts_of: Any) -> int:
    """``sentencekit encode INPUT -o OUT.npz|OUT.jsonl --sparse MODEL``: encode each text with the sparse model
    and write the sparse vectors. ``texts_of(args)`` reads INPUT. Raises ``ValueError`` (before loading the
    model) for an output that is not .npz / .jsonl or for dense-only options."""
    from sentencekit import cli_sides
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
    model = cli_sides.load_side_model("sparse", args.sparse, args)
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


__all__ = ["cmd_encode_sparse"]
