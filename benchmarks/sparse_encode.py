"""Throughput of ``SparseEncoder.encode`` (SPLADE): sentencekit on ONNX Runtime (pooling inside the graph, no
torch at run time) and on torch, against sentence-transformers' ``SparseEncoder`` (torch) on the same texts.

The corpus is ``encode_speed.py``'s (short STS-B sentences, ~230-token passages). Runners alternate within each
repeat, so drift hits all alike; the best of ``--repeats`` is reported, with each runner's ratio to the peer.
The model folder is copied to a temporary folder first: the ONNX export (done once, untimed) is never written
into the shared model folder. Outputs are compared to the peer's (max abs difference of the dense rows).

    .venv/bin/python benchmarks/sparse_encode.py                          # sentencekit only
    bash benchmarks/setup_peer.sh && .venv-peer/bin/python benchmarks/sparse_encode.py   # with the peer
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers_lib import build_corpus  # noqa: E402  (the fixed corpus encode_speed.py and compare_peers.py measure)


def splade_tiny() -> Path:
    """The SPLADE-tiny folder ``scripts/fetch_splade_tiny.py`` unpacks (``bash scripts/dev.sh setup``)."""
    spec = importlib.util.spec_from_file_location(
        "fetch_splade_tiny", Path(__file__).resolve().parent.parent / "scripts" / "fetch_splade_tiny.py")
    fetcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetcher)
    folder = fetcher.default_target()
    if not fetcher.is_complete(folder):
        sys.exit(f"SPLADE-tiny is not in {folder}: run `bash scripts/dev.sh setup`.")
    return folder


def as_dense(x):
    import numpy as np

    if hasattr(x, "toarray"):
        return x.toarray()
    if hasattr(x, "to_dense"):
        return x.to_dense().float().numpy()
    return np.asarray(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a SPLADE folder (default: SPLADE-tiny)")
    parser.add_argument("--short", type=int, default=1024, help="number of short texts")
    parser.add_argument("--long", type=int, default=128, help="number of long texts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads for every runner (default: all CPUs)")
    args = parser.parse_args()

    import torch

    from sentencekit import SparseEncoder

    source = Path(args.model) if args.model else splade_tiny()
    work = Path(tempfile.mkdtemp(prefix="sparse-bench-"))
    folder = work / "model"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("onnx"))
    if args.threads:
        torch.set_num_threads(args.threads)
    runners = {"sentencekit onnx": SparseEncoder(str(folder), backend="onnx", num_threads=args.threads),
               "sentencekit torch": SparseEncoder(str(folder), device="cpu", num_threads=args.threads)}
    peer = None
    if importlib.util.find_spec("sentence_transformers") is not None:
        import sentence_transformers

        peer = f"sentence-transformers {sentence_transformers.__version__}"
        runners[peer] = sentence_transformers.SparseEncoder(str(folder), device="cpu")
    corpus = build_corpus(args.short, args.long)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {source.name}; "
          f"batch {args.batch_size}; {args.repeats} repeats, best of")
    for model in runners.values():  # warm-up
        model.encode(corpus["short"][:64], batch_size=args.batch_size)
    times = {name: {kind: [] for kind in corpus} for name in runners}
    outputs = {}
    for _ in range(args.repeats):
        for kind, texts in corpus.items():
            for name, model in runners.items():
                t0 = time.perf_counter()
                out = model.encode(texts, batch_size=args.batch_size)
                times[name][kind].append(time.perf_counter() - t0)
                outputs[name, kind] = out
    for kind, texts in corpus.items():
        for name in runners:
            rate = len(texts) / min(times[name][kind])
            line = f"{name:<28} {kind:<5} n={len(texts):<5} {rate:8.1f} texts/s"
            if peer and name != peer:
                line += f"   {min(times[peer][kind]) / min(times[name][kind]):.2f}x the peer"
                diff = abs(as_dense(outputs[name, kind])[:64] - as_dense(outputs[peer, kind])[:64]).max()
                line += f"   max |diff| {diff:.1e} (first 64 rows)"
            print(line)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
