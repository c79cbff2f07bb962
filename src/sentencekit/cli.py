"""The ``sentencekit`` command line: ``search``, ``encode`` and ``similarity``.

Only argparse is imported at start-up; models and torch load inside the command that needs them.

    sentencekit search "How do I get a refund?"
    sentencekit encode texts.txt -o embeddings.npy
    sentencekit similarity "How do I get a refund?" "What is your return policy?"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from sentencekit.hub import DEFAULT_MODEL  # stdlib-only module: keeps start-up fast


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=os.environ.get("SENTENCEKIT_MODEL", DEFAULT_MODEL),
                   help="model folder or Hugging Face id (default: %(default)s; env SENTENCEKIT_MODEL)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (torch intra-op)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default: %(default)s)")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face Hub")


def _load_model(args: argparse.Namespace):
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from sentencekit.embedder import SentenceTransformer

    return SentenceTransformer(args.model, device=args.device, local_files_only=args.local_files_only)


def _read_texts(path: str, column: str) -> list[str]:
    if path == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    from sentencekit.search.corpus import load_corpus

    return [doc.text for doc in load_corpus(path, column=column)]


@contextlib.contextmanager
def _truncation_notes(model, *, what: str):
    """Turn the library's TruncationWarning into one plain line on stderr."""
    from sentencekit.embedder import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield
    info = model.last_info
    if info.num_truncated:
        print(f"note: {info.num_truncated} of {info.num_inputs} {what} are longer than the model's "
              f"{info.max_seq_length}-token limit and were truncated (their endings are not searched); "
              "split long texts into chunks.", file=sys.stderr)


def cmd_search(args: argparse.Namespace) -> int:
    from sentencekit.search.cache import corpus_embeddings
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    corpus_path = Path(args.corpus) if args.corpus else SAMPLE_CORPUS
    docs = load_corpus(corpus_path, column=args.column)
    t0 = time.perf_counter()
    model = _load_model(args)
    t1 = time.perf_counter()
    with _truncation_notes(model, what="documents"):
        embeddings, cached = corpus_embeddings(
            model, [d.text for d in docs], cache_dir=args.cache_dir, batch_size=args.batch_size,
            normalize_embeddings=True, show_progress_bar=len(docs) > 4 * args.batch_size,
        )
    t2 = time.perf_counter()
    import numpy as np

    scores = []
    for query in args.query:
        q = model.encode_query([query], normalize_embeddings=True)
        sims = (embeddings @ q[0]).astype(np.float64)
        top = np.argsort(-sims, kind="stable")[: args.top_k]
        scores.append((query, [(int(i), float(sims[i])) for i in top]))
    t3 = time.perf_counter()
    if args.json:
        print(json.dumps([{"query": q, "results": [{"corpus_id": i, "id": docs[i].id, "score": s,
                                                     "title": docs[i].title, "text": docs[i].text}
                                                    for i, s in hits]} for q, hits in scores], indent=2))
        return 0
    source = "cached" if cached else "computed now and cached"
    print(f"Model {args.model} | corpus {corpus_path.name}: {len(docs)} documents "
          f"(embeddings {source}) | load {t1 - t0:.1f}s, corpus {t2 - t1:.2f}s, query {t3 - t2:.3f}s")
    for query, hits in scores:
        print(f"\nQuery: {query}")
        for rank, (i, score) in enumerate(hits, 1):
            print(f"{rank:>2}. {score:.4f}  [{docs[i].id}] {_snippet(docs[i])}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np

    texts = _read_texts(args.input, args.column)
    model = _load_model(args)
    with _truncation_notes(model, what="texts"):
        embeddings = model.encode(
            texts, batch_size=args.batch_size, normalize_embeddings=args.normalize,
            prompt_name=args.prompt_name, truncate_dim=args.truncate_dim, precision=args.precision,
            show_progress_bar=not args.quiet and len(texts) > args.batch_size,
        )
    from sentencekit.files import atomic_write_bytes

    out = Path(args.output)
    import io

    buffer = io.BytesIO()
    np.save(buffer, embeddings, allow_pickle=False)
    atomic_write_bytes(out, buffer.getvalue())
    info = model.last_encode_info
    print(f"Wrote {out}: {embeddings.shape[0]} x {embeddings.shape[1]} {embeddings.dtype}"
          + (f" ({info.num_truncated} texts truncated at {info.max_seq_length} tokens)"
             if info.num_truncated else ""), file=sys.stderr)
    return 0


def cmd_similarity(args: argparse.Namespace) -> int:
    model = _load_model(args)
    a = model.encode([args.text_a])
    b = model.encode([args.text_b])
    score = float(model.similarity(a, b)[0, 0])
    print(f"{score:.4f}" if not args.json else json.dumps({"similarity": score,
                                                            "function": model.similarity_fn_name}))
    return 0


def _load_reranker(model: str, args: argparse.Namespace):
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from sentencekit.reranker import CrossEncoder

    return CrossEncoder(model, device=args.device, local_files_only=args.local_files_only)


def cmd_rerank(args: argparse.Namespace) -> int:
    from sentencekit.search.corpus import load_corpus

    docs = load_corpus(args.input, column=args.column)
    reranker = _load_reranker(args.model, args)
    with _truncation_notes(reranker, what="pairs"):
        ranked = reranker.rank(args.query, [d.text for d in docs], top_k=args.top_k, batch_size=args.batch_size,
                               show_progress_bar=len(docs) > 4 * args.batch_size)
    if args.json:
        print(json.dumps([{"corpus_id": r["corpus_id"], "id": docs[r["corpus_id"]].id, "score": r["score"],
                           "text": docs[r["corpus_id"]].text} for r in ranked], indent=2))
        return 0
    print(f"Query: {args.query}")
    for rank, r in enumerate(ranked, 1):
        doc = docs[r["corpus_id"]]
        print(f"{rank:>2}. {r['score']:.4f}  [{doc.id}] {_snippet(doc)}")
    return 0


def _snippet(doc, width: int = 160) -> str:
    text = doc.text if len(doc.text) <= width else doc.text[: width - 3] + "..."
    return f"{doc.title} - {text}" if doc.title else text


def cmd_train(args: argparse.Namespace) -> int:
    from sentencekit.training.config import run_config

    final = run_config(args.config)
    print(f"Trained model saved to {final}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentencekit",
                                     description="Text embeddings and semantic search (sentence-transformers "
                                                 "compatible).")
    from sentencekit import __version__

    parser.add_argument("--version", action="version", version=f"sentencekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("search", help="semantic search over a corpus (default: the bundled sample)",
                       description="Embed a corpus once (cached), then rank its documents for each query.")
    p.add_argument("query", nargs="+", help="one or more queries")
    p.add_argument("--corpus", help="JSON lines / CSV / TSV / text file (default: bundled sample corpus)")
    p.add_argument("--column", default="text", help="text field of the corpus (default: %(default)s)")
    p.add_argument("--top-k", "-k", type=int, default=5, help="results per query (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="where corpus embeddings are kept "
                                                     "(default: $SENTENCEKIT_CACHE or ~/.cache/sentencekit)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    _add_model_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("encode", help="embed texts from a file into a .npy array",
                       description="Embed each text of INPUT (text file, one per line; JSON lines; CSV; '-' "
                                   "for stdin) and save the [N, dim] array to OUTPUT (.npy).")
    p.add_argument("input", help="input file, or - for stdin")
    p.add_argument("-o", "--output", required=True, help="output .npy file")
    p.add_argument("--column", default="text", help="text field for JSON lines / CSV (default: %(default)s)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    p.add_argument("--prompt-name", default=None, help="a prompt of the model, e.g. query or document")
    p.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka: keep the first N dimensions")
    p.add_argument("--precision", default="float32", choices=["float32", "int8", "uint8", "binary", "ubinary"])
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_model_args(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("similarity", help="similarity score of two texts",
                       description="Print the model's similarity (cosine by default) between two texts.")
    p.add_argument("text_a")
    p.add_argument("text_b")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_model_args(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("rerank", help="re-score documents for a query with a cross-encoder",
                       description="Score every document of INPUT against QUERY with a cross-encoder and print "
                                   "them best first. Cross-encoders read each pair jointly: precise but slow, so "
                                   "use them on a shortlist (e.g. `search --rerank`), not on a whole corpus.")
    p.add_argument("query")
    p.add_argument("input", help="documents: JSON lines / CSV / TSV / text file (one document a line)")
    p.add_argument("--model", "-m", required=True, help="cross-encoder folder or Hugging Face id")
    p.add_argument("--column", default="text", help="text field for JSON lines / CSV (default: %(default)s)")
    p.add_argument("--top-k", "-k", type=int, default=10, help="results to print (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference (torch intra-op)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per batch (default: %(default)s)")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face Hub")
    p.set_defaults(func=cmd_rerank)

    p = sub.add_parser("train", help="train an embedder or reranker from a YAML config",
                       description="Run the training a YAML file describes (model, datasets, loss, evaluator, "
                                   "training arguments); see sentencekit/training/config.py for the format. "
                                   "Needs the train extra: pip install sentencekit[train].")
    p.add_argument("config", help="training config (.yaml)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) <= 0:
        print("sentencekit: --batch-size must be positive", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (OSError, ValueError, TypeError) as exc:
        print(f"sentencekit {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
