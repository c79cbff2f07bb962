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
from collections.abc import Iterator, Sequence
from pathlib import Path

# stdlib-only: keeps start-up fast
from sentencekit.cli_index_export import add_export_parser
from sentencekit.cli_notes import shorten, truncation_notes
from sentencekit.cli_options import add_backend_args, add_encoding_arg, add_model_args, resolve_default_model
from sentencekit.cli_sides import (
    MODEL_SIDES,
    add_fusion_weights_arg,
    add_side_arg,
    check_fusion_weights,
    given_sides,
    has_side,
    index_keywords,
    load_given_models,
    models_for_index,
    needs_model_error,
    search_models,
)


def _model_options(args: argparse.Namespace) -> dict:
    return {"device": args.device, "local_files_only": args.local_files_only, "num_threads": args.threads,
            "compute_dtype": args.compute_dtype}


def _load_model(args: argparse.Namespace):
    """The embedder on ``--backend`` (``auto``: as ``sentencekit serve`` picks it)."""
    from sentencekit.engines import load_on_backend
    from sentencekit.families.embedder import SentenceTransformer

    return load_on_backend(SentenceTransformer, args.model, args.model_backend, **_model_options(args))[0]


def _read_texts(path: str, column: str, encoding: str = "utf-8") -> list[str]:
    if path == "-":
        from sentencekit.search.corpus import check_encoding, text_lines

        check_encoding(encoding)
        return [line.rstrip("\r\n") for _, line in text_lines(sys.stdin.buffer, encoding, "<stdin>")
                if line.strip()]
    from sentencekit.search.corpus import load_corpus

    return [doc.text for doc in load_corpus(path, column=column, encoding=encoding)]


def cmd_search(args: argparse.Namespace) -> int:
    blank = [i for i, q in enumerate(args.query) if not q.strip()]
    if blank:  # an empty query embeds to something and would return arbitrary documents
        raise ValueError(f"query {blank[0] + 1} is empty; pass the text to search for (quoted, as one argument)")
    if args.index and args.corpus:  # the stored index would be searched and the corpus silently ignored
        raise ValueError("pass --index (a built index) or --corpus (a corpus file, indexed on first use), not both")
    given = given_sides(args)  # one side's model given: that side alone by default; both: hybrid
    retrieval = args.retrieval or (given[0] if len(given) == 1 else "hybrid" if given else "dense")
    for flag, value in (("--fusion", args.fusion), ("--fusion-weights", args.fusion_weights)):
        if value is not None and retrieval != "hybrid":  # it would change nothing, silently
            raise ValueError(f"{flag} merges the rankings of --retrieval hybrid; with --retrieval {retrieval} "
                             f"there is one ranking. Drop {flag} or add --retrieval hybrid")
    if retrieval in MODEL_SIDES and retrieval not in given and not args.index:
        raise needs_model_error(retrieval)
    t0 = time.perf_counter()
    model = _load_model(args)
    with truncation_notes("documents") as notes:
        if args.index:
            from sentencekit.search.index import EmbeddingIndex
            from sentencekit.search.storage import read_manifest

            side_models = search_models(args, args.index, read_manifest(Path(args.index)), retrieval)
            t1 = time.perf_counter()
            index = EmbeddingIndex.open(args.index, model, **index_keywords(side_models))
            added, source = 0, Path(args.index).name
        else:
            from sentencekit.search.corpus import SAMPLE_CORPUS
            from sentencekit.search.corpus_index import managed_index

            side_models = load_given_models(args)
            t1 = time.perf_counter()
            corpus = Path(args.corpus) if args.corpus else SAMPLE_CORPUS
            index, added = managed_index(corpus, model, column=args.column, cache_dir=args.cache_dir,
                                         batch_size=args.batch_size, encoding=args.encoding,
                                         **index_keywords(side_models))
            source = corpus.name
        notes.set_total("documents", added)
    t2 = time.perf_counter()
    reranker, reranker_name = _search_reranker(args)
    weights = check_fusion_weights(args.fusion_weights, index.manifest)
    with truncation_notes("queries"):
        results = index.search(list(args.query), top_k=args.top_k, reranker=reranker,
                               rerank_top_n=args.rerank_top_n, retrieval=retrieval, fusion=args.fusion or "rrf",
                               fusion_weights=weights)
    t3 = time.perf_counter()
    if args.json:
        print(json.dumps([{"query": q, "results": hits} for q, hits in zip(args.query, results)], indent=2,
                         default=str))
        return 0
    state = f"{added} embedded now" if added else "embeddings reused"
    rerank_note = f" | reranked by {reranker_name} (top {args.rerank_top_n})" if reranker else ""
    side_note = "".join(f" + {key} {Path(str(m.model_name_or_path)).name}" for key, m in side_models.items())
    print(f"Model {args.model}{side_note} | {source}: {len(index)} documents ({state}){rerank_note} | "
          f"load {t1 - t0:.1f}s, index {t2 - t1:.2f}s, search {t3 - t2:.3f}s")
    for query, hits in zip(args.query, results):
        print(f"\nQuery: {shorten(query)}")
        if not hits:  # lexical / sparse retrieval find nothing when no query term occurs in the documents
            print(f"    no results ({retrieval} retrieval: no document matches; try --retrieval dense)"
                  if retrieval in ("lexical", "sparse") else "    no results")
        for rank, hit in enumerate(hits, 1):
            print(f"{rank:>2}. {hit['score']:.4f}  {_hit_line(hit)}")
    return 0


def _hit_line(hit: dict) -> str:
    """``[id] title - text`` of one result; for a chunked document, the matching chunk (which one, and its
    text) rather than the document's beginning."""
    title = hit.get("title") or (hit.get("metadata") or {}).get("title", "")
    chunk = hit.get("chunk")
    where = f" (chunk {chunk['index'] + 1})" if chunk else ""
    text = shorten(chunk["text"] if chunk else hit["text"], 160)
    return f"[{hit['id']}]{where} {title + ' - ' if title else ''}{text}"


def _search_reranker(args: argparse.Namespace):
    """``--rerank MODEL``, or the installed default reranker (``auto``), or none."""
    choice = args.rerank
    if choice == "none":
        return None, None
    if choice == "auto":
        from sentencekit.search.defaults import installed_reranker

        folder = installed_reranker()
        if folder is None:
            return None, None
        choice = str(folder)
    return _load_reranker(choice, args), Path(choice).name


def cmd_index_build(args: argparse.Namespace) -> int:
    from sentencekit.search.corpus_index import build_index
    from sentencekit.search.storage import manifest_path, read_manifest

    model = _load_model(args)
    if manifest_path(Path(args.out)).exists():  # adding to an index with a sparse / multi-vector side needs its model
        side_models = models_for_index(args, args.out, read_manifest(Path(args.out)), required=lambda key: True,
                                       what="add documents")
    else:
        side_models = load_given_models(args)
    with truncation_notes("documents") as notes:
        index, added = build_index(args.input, args.out, model, column=args.column, chunk=args.chunk,
                                   precision=args.precision, backend=args.index_kind, batch_size=args.batch_size,
                                   lexical=False if args.no_lexical else None, encoding=args.encoding,
                                   **index_keywords(side_models))
        notes.set_total("documents", added)
    sides = "".join(f" and {side.stored}" for key, side in MODEL_SIDES.items() if has_side(key, index.manifest))
    kind = "images" if index.manifest.get("image_documents") else "documents"
    print(f"{args.out}: {len(index)} {kind}{sides} ({added} added now)")
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from sentencekit.search.index import EmbeddingIndex

    index = EmbeddingIndex.open(args.index)
    if args.json:
        print(json.dumps({"documents": len(index), **index.manifest}, indent=2, default=str))
        return 0
    from sentencekit.search.index_summary import summary_lines

    print("\n".join(summary_lines(args.index, index)))
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    from sentencekit.search.integrity import verify

    report = verify(args.index)
    print(json.dumps(report, indent=2))
    if not report["ok"]:
        print(f"{args.index} is damaged ({len(report['problems'])} problem(s)); run `sentencekit index repair "
              f"{args.index}` (add --reembed to re-embed documents whose texts survive).", file=sys.stderr)
    return 0 if report["ok"] else 1


def cmd_index_repair(args: argparse.Namespace) -> int:
    from sentencekit.search.integrity import repair
    from sentencekit.search.storage import read_manifest

    side_models = {}
    if given_sides(args):  # only the options given: a side without one is dropped if damaged
        side_models = models_for_index(args, args.index, read_manifest(Path(args.index)), required=lambda key: False,
                                       what="re-encode its damaged parts")
    with truncation_notes("documents"):
        report = repair(args.index, _load_model(args) if args.reembed else None, **index_keywords(side_models))
    print(json.dumps(report, indent=2))
    for key, side in MODEL_SIDES.items():
        if report.get(key) == "dropped":
            print(f"The {side.title} side had damaged parts and was dropped (no {side.flag} model to re-encode "
                  f"them); add it again with `sentencekit index build CORPUS --out {args.index} {side.flag} MODEL`.",
                  file=sys.stderr)
    if report["lost_ids"] or report["lost_unknown"]:
        print(f"{len(report['lost_ids'])} document(s) must be added again (ids under \"lost_ids\")"
              + (f", plus {report['lost_unknown']} whose ids were unreadable" if report["lost_unknown"] else "")
              + ".", file=sys.stderr)
    if report["dropped_deletes"]:
        print(f"{report['dropped_deletes']} deletion(s) were lost with a damaged delete list: those documents "
              "are back in the index; delete them again.", file=sys.stderr)
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    if args.sparse:
        from sentencekit.cli_encode_sparse import cmd_encode_sparse

        return cmd_encode_sparse(args, lambda a: _read_texts(a.input, a.column, a.encoding))
    if args.max_active_dims is not None:
        raise ValueError("--max-active-dims keeps a sparse encoding's largest weights; add --sparse MODEL")
    if Path(args.output).suffix.lower() != ".npy":  # np.save writes .npy content whatever the name says
        raise ValueError(f"-o {args.output}: dense embeddings are written as a NumPy .npy file; name it *.npy "
                         "(.npz and .jsonl are the formats of --sparse)")
    import numpy as np

    texts = _read_texts(args.input, args.column, args.encoding)
    model = _load_model(args)
    with truncation_notes("texts"):
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
    print(f"Wrote {out}: {embeddings.shape[0]} x {embeddings.shape[1]} {embeddings.dtype}", file=sys.stderr)
    return 0


def cmd_similarity(args: argparse.Namespace) -> int:
    model = _load_model(args)
    with truncation_notes("texts"):
        embeddings = model.encode([args.text_a, args.text_b])  # one call: one truncation count of both
    score = float(model.similarity(embeddings[:1], embeddings[1:])[0, 0])
    print(f"{score:.4f}" if not args.json else json.dumps({"similarity": score,
                                                            "function": model.similarity_fn_name}))
    return 0


def _load_reranker(model: str, args: argparse.Namespace):
    from sentencekit.engines import load_on_backend
    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.hub import resolve_model
    from sentencekit.spec.model_spec import read_spec

    spec = read_spec(resolve_model(model, local_files_only=args.local_files_only).path)
    if spec.is_multivector:  # a ColBERT model reranks by late interaction (MultiVectorEncoder.predict)
        from sentencekit.families.multivector import MultiVectorEncoder

        return load_on_backend(MultiVectorEncoder, model, args.model_backend, what="reranker",
                               **_model_options(args))[0]
    # Refuse a folder without a trained head before loading (or exporting) anything: in Python the
    # check comes at predict time with a Python fix; a CLI user needs the CLI's.
    reason = spec.untrained_head
    if reason:
        raise ValueError(f"{reason}: it is not a trained reranker (its scores would be random). Pass a "
                         "cross-encoder trained for reranking, e.g. the one examples/train_insuranceqa_reranker.py "
                         "--install makes, or --rerank none")
    return load_on_backend(CrossEncoder, model, args.model_backend, what="reranker", **_model_options(args))[0]


def cmd_rerank(args: argparse.Namespace) -> int:
    from sentencekit.search.corpus import load_corpus
    from sentencekit.search.results import reranker_text

    docs = load_corpus(args.input, column=args.column, encoding=args.encoding)
    reranker = _load_reranker(args.model, args)
    texts = [reranker_text({"text": d.text, "title": d.title}) for d in docs]  # what `search --rerank` reads
    with truncation_notes("pairs"):
        ranked = reranker.rank(args.query, texts, top_k=args.top_k, batch_size=args.batch_size,
                               show_progress_bar=len(docs) > 4 * args.batch_size)
    if args.json:
        print(json.dumps([{"corpus_id": r["corpus_id"], "id": docs[r["corpus_id"]].id, "score": r["score"],
                           "text": docs[r["corpus_id"]].text} for r in ranked], indent=2))
        return 0
    print(f"Query: {shorten(args.query)}")
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

    p = sub.add_parser("search", help="semantic search over a stored corpus (default: the bundled sample)",
                       description="Rank documents for each query. Without --index, the corpus (default: the "
                                   "bundled sample) is embedded once into a stored index under "
                                   "$SENTENCEKIT_HOME/indexes and reused. A cross-encoder can re-score the "
                                   "top results: --rerank MODEL, or the installed default reranker (auto).")
    p.add_argument("query", nargs="+", help="one or more queries")
    p.add_argument("--index", help="a stored index (see `sentencekit index build`)")
    p.add_argument("--corpus", help="Parquet / JSON lines / CSV / TSV / text file, or a folder of .txt/.md/.rst "
                                    "files (default: bundled sample corpus)")
    p.add_argument("--column", default="text", help="text column of the corpus (default: %(default)s)")
    p.add_argument("--top-k", "-k", type=int, default=5, help="results per query (default: %(default)s)")
    p.add_argument("--rerank", default="auto", metavar="MODEL|auto|none",
                   help="cross-encoder for re-scoring; auto: the installed default reranker if present")
    p.add_argument("--rerank-top-n", type=int, default=20, help="candidates the reranker re-scores")
    p.add_argument("--retrieval", default=None, choices=["dense", "lexical", "sparse", "multivector", "hybrid"],
                   help="first stage: embeddings, BM25 over the texts, learned-sparse vectors (--sparse, or an "
                        "index built with one), multi-vector late interaction (--multivector, or an index built "
                        "with one), or hybrid: dense fused with the sparse and multi-vector sides there are and "
                        "BM25 if the index keeps it or has neither (lexical needs sentencekit[hybrid]) "
                        "(default: sparse with --sparse, multivector with --multivector, hybrid with both, "
                        "else dense)")
    p.add_argument("--fusion", default=None, choices=["rrf", "weighted"],
                   help="how --retrieval hybrid merges the rankings: reciprocal rank fusion or a weighted "
                        "sum of min-max normalised scores (default: rrf)")
    add_fusion_weights_arg(p)
    add_side_arg(p, "sparse", "a sparse encoder (SPLADE folder or Hugging Face id) for --retrieval sparse|hybrid: "
                              "the corpus gets a learned-sparse side too. With --index, the index's own sparse model "
                              "is used when this is not given (it must be available locally)")
    add_side_arg(p, "multivector", "a multi-vector model (ColBERT folder or Hugging Face id) for --retrieval "
                                   "multivector|hybrid: the corpus gets a late-interaction side too. With --index, the "
                                   "index's own multi-vector model is used when this is not given (it must be "
                                   "available locally)")
    p.add_argument("--cache-dir", default=None, help="where corpus indexes are kept "
                                                     "(default: $SENTENCEKIT_HOME/indexes)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    add_model_args(p)
    add_encoding_arg(p)
    p.set_defaults(func=cmd_search)

    index_parser = sub.add_parser("index", help="build or inspect a stored embedding index",
                                  description="Stored corpora: documents embedded once, searched many times.")
    index_sub = index_parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    p = index_sub.add_parser("build", help="embed a corpus file or folder into an index (adds new ids only)",
                             description="Create the index OUT (or extend it with documents whose ids it does "
                                         "not have) from INPUT: a Parquet / JSON lines / CSV / TSV / text file, or "
                                         "a folder of .txt/.md/.rst files (one document each). Ids come from an "
                                         "'id' column when the file has one, else they are the row numbers.")
    p.add_argument("input", help="corpus file or folder")
    p.add_argument("--out", "-o", required=True, help="index folder")
    p.add_argument("--column", default="text", help="text column of Parquet / JSON lines / CSV (default: %(default)s)")
    p.add_argument("--chunk", action="store_true", help="split long documents into overlapping token windows")
    p.add_argument("--precision", default="float32", choices=["float32", "int8", "ubinary"],
                   help="how vectors are stored: float32, int8 (4x smaller), ubinary (32x smaller, rescored) "
                        "(default: %(default)s)")
    p.add_argument("--index-kind", default="exact", choices=["exact", "hnsw", "auto"],
                   help="exact search, an HNSW graph (approximate, for large indexes), or auto (HNSW from "
                        "100,000 vectors) (default: %(default)s)")
    p.add_argument("--no-lexical", action="store_true",
                   help="do not keep a BM25 side for `search --retrieval lexical|hybrid` (kept by default when "
                        "bm25s is installed: pip install 'sentencekit[hybrid]')")
    add_side_arg(p, "sparse", "also keep a learned-sparse side encoded by this sparse encoder (SPLADE), for "
                              "`search --retrieval sparse|hybrid`; on an existing index without one, its stored "
                              "documents are encoded too (needs scipy: pip install 'sentencekit[sparse]')")
    add_side_arg(p, "multivector", "also keep a late-interaction side encoded by this multi-vector model "
                                   "(ColBERT), for `search --retrieval multivector|hybrid`; on an existing index "
                                   "without one, its stored documents are encoded too")
    add_model_args(p, legacy_index_kind=True, model_backend_alias=True)
    add_encoding_arg(p)
    p.set_defaults(func=cmd_index_build)
    p = index_sub.add_parser("info", help="summarize an index (documents, model, precision, size)",
                             description="Summarize an index: documents, chunks, model, precision, index kind, "
                                         "size on disk. --json prints the whole manifest.")
    p.add_argument("index")
    p.add_argument("--json", action="store_true", help="print the document count and the manifest as JSON")
    p.set_defaults(func=cmd_index_info)
    p = index_sub.add_parser("verify", help="check every file of an index against its recorded checksums",
                             description="Compare each file of the index with the size and SHA-256 recorded in "
                                         "its manifest (opening an index only checks sizes). Prints a JSON "
                                         "report; exit status 1 if anything is damaged.")
    p.add_argument("index")
    p.set_defaults(func=cmd_index_verify)
    p = index_sub.add_parser("repair", help="drop (or re-embed) the damaged parts of an index",
                             description="Commit a manifest without the damaged files (moved to INDEX/damaged/). "
                                         "Prints which document ids are lost and must be added again. With "
                                         "--reembed, segments whose stored texts survive are re-embedded with "
                                         "--model (the model the index was built with) instead of dropped.")
    p.add_argument("index")
    p.add_argument("--reembed", action="store_true", help="re-embed surviving texts with --model")
    add_side_arg(p, "sparse", "re-encode damaged learned-sparse parts from the stored texts with this sparse "
                              "encoder (the one the index was built with); without it a damaged sparse side is "
                              "dropped")
    add_side_arg(p, "multivector", "re-encode damaged multi-vector parts from the stored texts with this ColBERT "
                                   "model (the one the index was built with); without it a damaged multi-vector "
                                   "side is dropped")
    add_model_args(p, model_backend_alias=True)
    p.set_defaults(func=cmd_index_repair)
    add_export_parser(index_sub)

    p = sub.add_parser("encode", help="embed texts from a file into a .npy array (sparse: .npz or .jsonl)",
                       description="Embed each text of INPUT (text file, one per line; Parquet; JSON lines; CSV; '-' "
                                   "for stdin) and save the [N, dim] array to OUTPUT (.npy). With --sparse MODEL, "
                                   "encode with that sparse encoder (SPLADE) instead and write OUTPUT as .npz: a "
                                   "SciPy CSR matrix [N, vocab] float32 (scipy.sparse.save_npz; read it with "
                                   "scipy.sparse.load_npz, no pickle), or .jsonl: one line per text, in input "
                                   "order, [{\"index\": term, \"value\": weight}, ...] with terms ascending "
                                   "(TEI's /embed_sparse shape).")
    p.add_argument("input", help="input file, or - for stdin")
    p.add_argument("-o", "--output", required=True, help="output .npy file (with --sparse: .npz or .jsonl)")
    p.add_argument("--column", default="text", help="text column of Parquet / JSON lines / CSV (default: %(default)s)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    p.add_argument("--prompt-name", default=None, help="a prompt of the model, e.g. query or document")
    p.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka: keep the first N dimensions")
    p.add_argument("--precision", default="float32", choices=["float32", "int8", "uint8", "binary", "ubinary"])
    add_side_arg(p, "sparse", "encode with this sparse encoder (SPLADE folder or Hugging Face id) instead of "
                              "--model; OUTPUT is .npz or .jsonl (see above)")
    p.add_argument("--max-active-dims", type=int, default=None, metavar="N",
                   help="with --sparse: keep each text's N largest weights (default: the model's setting)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_args(p)
    add_encoding_arg(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("similarity", help="similarity score of two texts",
                       description="Print the model's similarity (cosine by default) between two texts.")
    p.add_argument("text_a")
    p.add_argument("text_b")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("rerank", help="re-score documents for a query with a cross-encoder (or a ColBERT model)",
                       description="Score every document of INPUT against QUERY with a cross-encoder and print "
                                   "them best first. Cross-encoders read each pair jointly: precise but slow, so "
                                   "use them on a shortlist (e.g. `search --rerank`), not on a whole corpus.")
    p.add_argument("query")
    p.add_argument("input", help="documents: Parquet / JSON lines / CSV / TSV / text file (one document a line)")
    p.add_argument("--model", "-m", required=True, help="cross-encoder folder or Hugging Face id")
    p.add_argument("--column", default="text", help="text column of Parquet / JSON lines / CSV (default: %(default)s)")
    p.add_argument("--top-k", "-k", type=int, default=10, help="results to print (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (torch intra-op, or ONNX Runtime intra-op)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per batch (default: %(default)s)")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face Hub")
    add_backend_args(p)
    add_encoding_arg(p)
    p.set_defaults(func=cmd_rerank)

    from sentencekit.serve.serve_cli import add_serve_parser  # stdlib-only: FastAPI/uvicorn load inside the command

    add_serve_parser(sub)

    p = sub.add_parser("train", help="train an embedder or reranker from a YAML config",
                       description="Run the training a YAML file describes (model, datasets, loss, evaluator, "
                                   "training arguments); see sentencekit/training/config.py for the format. "
                                   "Needs the train extra: pip install sentencekit[train].")
    p.add_argument("config", help="training config (.yaml)")
    p.set_defaults(func=cmd_train)

    from sentencekit.corpus_embed import add_embed_corpus_parser

    add_embed_corpus_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) <= 0:
        print("sentencekit: --batch-size must be positive", file=sys.stderr)
        return 2
    from sentencekit.progress import show_on_stderr

    show_on_stderr()  # first-time ONNX exports and int8 calibration say what they are doing
    with _plain_warnings(args.command):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        # the index a command reads or extends: its recorded model is the default --model
        resolve_default_model(args, getattr(args, "index", None) or getattr(args, "out", None))
        return args.func(args)
    except BrokenPipeError:  # `sentencekit ... | head`: the reader left; nothing to report
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is silent
        return 141
    except (OSError, ValueError, TypeError, ImportError) as exc:  # ImportError: an optional extra is missing
        print(f"sentencekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # an index opened without the model an action needs: a message, not a traceback
        from sentencekit.search.index_errors import IndexReadOnlyError

        if not isinstance(exc, IndexReadOnlyError):
            raise
        print(f"sentencekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C is a user's choice, not a crash: no traceback; 130 as shells report it
        print(f"\nsentencekit {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _plain_warnings(command: str) -> Iterator[None]:
    """Inside the block, library warnings print as one plain line each (``sentencekit search: warning:
    ...``), not in Python's ``file:line: UserWarning:`` form pointing into the CLI's own code."""
    import warnings

    def plain(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001, ARG001
        return f"sentencekit {command}: warning: {message}\n"

    # the text Python's own warning printer writes; code that records warnings (tests) is not affected
    previous, warnings.formatwarning = warnings.formatwarning, plain
    try:
        yield
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
