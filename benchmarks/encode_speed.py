"""Throughput of ``encode`` with the default model on a fixed corpus: texts/s and tokens/s.

Short texts are STS-B test sentences (~13 words); long ones are passages stitched from the bundled
sample corpus (~230 tokens). When sentence-transformers is importable (run inside the peer
environment made by ``benchmarks/setup_peer.sh``) it is measured in the same run, alternating with
sentencekit, and the ratio is printed.

    .venv/bin/python benchmarks/encode_speed.py           # sentencekit only
    bash benchmarks/setup_peer.sh && .venv-peer/bin/python benchmarks/encode_speed.py   # side by side
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers_lib import build_corpus  # noqa: E402  (the same fixed corpus compare_peers.py measures)


def count_tokens(model, texts: list[str]) -> int:
    tok = model.tokenizer
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]]
    return sum(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--short", type=int, default=1024, help="number of short texts")
    parser.add_argument("--long", type=int, default=128, help="number of long texts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from sentencekit import SentenceTransformer
    from sentencekit.hub import resolve_model

    folder = str(resolve_model(args.model).path)
    runners = {"sentencekit": SentenceTransformer(folder, device="cpu")}
    if importlib.util.find_spec("sentence_transformers") is not None:
        import sentence_transformers

        runners[f"sentence-transformers {sentence_transformers.__version__}"] = (
            sentence_transformers.SentenceTransformer(folder, device="cpu")
        )
    corpus = build_corpus(args.short, args.long)
    tokens = {k: count_tokens(runners["sentencekit"], v) for k, v in corpus.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}; "
          f"batch {args.batch_size}")
    results: dict[str, dict[str, list[float]]] = {name: {k: [] for k in corpus} for name in runners}
    for model in runners.values():  # warm-up
        model.encode(corpus["short"][:64], batch_size=args.batch_size)
    for _ in range(args.repeats):
        for kind, texts in corpus.items():
            for name, model in runners.items():  # alternate, so drift hits every runner alike
                t0 = time.perf_counter()
                model.encode(texts, batch_size=args.batch_size)
                results[name][kind].append(time.perf_counter() - t0)
    base = "sentencekit"
    rows = []
    for name in runners:
        for kind, texts in corpus.items():
            best = min(results[name][kind])
            row = {"runner": name, "texts": kind, "n": len(texts), "texts_per_s": len(texts) / best,
                   "tokens_per_s": tokens[kind] / best, "median_s": statistics.median(results[name][kind])}
            rows.append(row)
    peer = next((n for n in runners if n != base), None)
    for row in rows:
        line = (f"{row['runner']:<28} {row['texts']:<5} n={row['n']:<5} {row['texts_per_s']:8.1f} texts/s "
                f"{row['tokens_per_s']:9.0f} tokens/s")
        if peer and row["runner"] == base:
            peer_row = next(r for r in rows if r["runner"] == peer and r["texts"] == row["texts"])
            line += f"   ratio vs peer: {row['texts_per_s'] / peer_row['texts_per_s']:.2f}x"
        print(line)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
