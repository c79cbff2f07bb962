"""sentencekit against sentence-transformers on the CPU, side by side, in one run.

On a fixed corpus (STS-B test sentences as short texts, passages stitched from the bundled sample
corpus as long ones) every path encodes the same texts, alternating path by path and round by round so
that machine drift hits all alike:

  sentence-transformers 6.2  torch fp32 (the reference), torch bf16 (``model_kwargs={"torch_dtype":
                             torch.bfloat16}``), and its onnx / onnx-int8 backends (avx512_vnni
                             export). optimum-onnx needs transformers < 4.58 while 6.2 needs >= 5, so the
                             onnx backends run in a second environment with sentence-transformers 5.x
                             (``--peer-onnx-python``), as a worker process driven from here;
  sentencekit                torch fp32, torch bf16 (``compute_dtype="auto"``), onnx fp32, onnx int8,
                             and openvino fp32 / int8 where ``openvino`` is installed.

It prints texts/s and tokens/s, the ratio to sentence-transformers torch fp32, the share of the
machine's measured matmul peak (of the path's own precision; the best of torch's and ONNX Runtime's GEMM
on one transformer-shaped product, so no path can pass 100%), the cosine to the fp32 reference
(mean / min), STS-B test Spearman, cold start (fresh process: import, load, encode one sentence) wall
time and peak RSS, and the same speed figures for CrossEncoder.predict.

    bash benchmarks/setup_peer.sh                     # .venv-peer: sentence-transformers 6.2 + sentencekit
    bash benchmarks/setup_peer_onnx.sh                # .venv-peer-onnx: sentence-transformers 5.x + optimum
    .venv-peer/bin/python benchmarks/compare_peers.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_lib import (  # noqa: E402
    InProcess,
    Worker,
    alternate_rounds,
    build_corpus,
    cold_start,
    corpus_flops,
    cosine_stats,
    matmul_peaks,
    print_table,
    print_targets,
    reranker_folder,
    spearman,
)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def embedder_paths(folder: Path, onnx_folder: Path, peer_python: str | None, threads: int) -> list:
    import torch
    from sentence_transformers import SentenceTransformer as ST

    from sentencekit import SentenceTransformer as SK

    torch.set_num_threads(threads)
    paths = [
        InProcess("ST torch fp32", "fp32", lambda: ST(str(folder), device="cpu")),
        InProcess("ST torch bf16", "bf16",
                  lambda: ST(str(folder), device="cpu", model_kwargs={"torch_dtype": torch.bfloat16})),
    ]
    if peer_python:
        paths += [Worker("ST onnx fp32", "fp32", peer_python, onnx_folder, "onnx/model.onnx"),
                  Worker("ST onnx int8", "int8", peer_python, onnx_folder, "onnx/model_qint8_avx512_vnni.onnx")]
    paths += [
        InProcess("sentencekit torch fp32", "fp32", lambda: SK(str(folder), device="cpu")),
        InProcess("sentencekit torch bf16", "bf16", lambda: SK(str(folder), device="cpu", compute_dtype="auto")),
    ]
    for backend in ("onnx", *(["openvino"] if openvino_installed() else [])):
        for precision, dtype in (("fp32", "float32"), ("int8", "int8")):
            paths.append(InProcess(f"sentencekit {backend} {precision}", precision,
                                   lambda b=backend, d=dtype: SK(str(folder), backend=b, compute_dtype=d,
                                                                 num_threads=threads)))
    return paths


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


COLD = {
    "ST torch fp32": "from sentence_transformers import SentenceTransformer as M; m = M({f!r}, device='cpu')",
    "ST torch bf16": ("import torch; from sentence_transformers import SentenceTransformer as M; "
                      "m = M({f!r}, device='cpu', model_kwargs={{'torch_dtype': torch.bfloat16}})"),
    "ST onnx fp32": ("from sentence_transformers import SentenceTransformer as M; "
                     "m = M({o!r}, device='cpu', backend='onnx', model_kwargs={{'file_name': 'onnx/model.onnx'}})"),
    "ST onnx int8": ("from sentence_transformers import SentenceTransformer as M; m = M({o!r}, device='cpu', "
                     "backend='onnx', model_kwargs={{'file_name': 'onnx/model_qint8_avx512_vnni.onnx'}})"),
    "sentencekit torch fp32": "from sentencekit import SentenceTransformer as M; m = M({f!r}, device='cpu')",
    "sentencekit torch bf16": ("from sentencekit import SentenceTransformer as M; "
                               "m = M({f!r}, device='cpu', compute_dtype='auto')"),
    "sentencekit onnx fp32": "from sentencekit import SentenceTransformer as M; m = M({f!r}, backend='onnx')",
    "sentencekit onnx int8": ("from sentencekit import SentenceTransformer as M; "
                              "m = M({f!r}, backend='onnx', compute_dtype='int8')"),
    "sentencekit openvino fp32": "from sentencekit import SentenceTransformer as M; m = M({f!r}, backend='openvino')",
    "sentencekit openvino int8": ("from sentencekit import SentenceTransformer as M; "
                                  "m = M({f!r}, backend='openvino', compute_dtype='int8')"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--short", type=int, default=1024)
    parser.add_argument("--long", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--peer-onnx-python", default=str(ROOT / ".venv-peer-onnx" / "bin" / "python"))
    parser.add_argument("--quick", action="store_true", help="small corpus, one round, no cold starts")
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--no-stsb", action="store_true")
    parser.add_argument("--no-reranker", action="store_true")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.short, args.long, args.repeats, args.no_cold = 256, 32, 1, True

    import sentence_transformers

    import sentencekit
    from sentencekit.engines.cpu import cpu_features
    from sentencekit.hub import resolve_model

    work = Path(tempfile.mkdtemp(prefix="compare-peers-"))
    folder = work / "model"  # a private copy: exports land beside it, not in site-packages
    shutil.copytree(resolve_model(args.model).path, folder, ignore=shutil.ignore_patterns("onnx"))
    onnx_folder = work / "model-st-onnx"
    shutil.copytree(folder, onnx_folder)
    peer = args.peer_onnx_python if Path(args.peer_onnx_python).is_file() else None
    print(f"# {platform.node()}: {cpu_features().describe()}, {args.threads} threads; {args.model}; "
          f"batch {args.batch_size}; sentence-transformers {sentence_transformers.__version__} "
          f"(onnx backends: {'sentence-transformers 5.x worker' if peer else 'not installed'}); "
          f"sentencekit {sentencekit.__version__}", flush=True)

    corpus = build_corpus(args.short, args.long)
    paths = embedder_paths(folder, onnx_folder, peer, args.threads)
    for p in paths:
        t0 = time.perf_counter()
        p.load()
        print(f"  loaded {p.name} in {time.perf_counter() - t0:.1f}s", flush=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    lengths = {k: [len(x) for x in tok(v, truncation=True, max_length=256)["input_ids"]] for k, v in corpus.items()}
    flops = {k: corpus_flops(folder, v) for k, v in lengths.items()}
    peaks, peak_sources = matmul_peaks(args.threads)
    print("# matmul peak GFLOP/s (best library): " + ", ".join(f"{k} {v:.0f} ({peak_sources[k]})"
                                                             for k, v in peaks.items()), flush=True)

    for p in paths:  # warm-up (and the embeddings compared with the fp32 reference)
        p.warm(corpus["short"][:64], args.batch_size)
    times, outputs = alternate_rounds(paths, corpus, args.repeats, args.batch_size)

    rows = []
    reference = paths[0].name
    for p in paths:
        row = {"path": p.name, "precision": p.precision}
        for kind, texts in corpus.items():
            best = min(times[p.name][kind])
            ref_best = min(times[reference][kind])
            mean, low = cosine_stats(outputs[p.name][kind], outputs[reference][kind])
            row[kind] = {"texts_per_s": len(texts) / best, "tokens_per_s": sum(lengths[kind]) / best,
                         "ratio": ref_best / best, "peak_share": flops[kind] / best / 1e9 / peaks[p.precision],
                         "cos_mean": mean, "cos_min": low, "seconds": times[p.name][kind]}
        rows.append(row)
    if not args.no_stsb:
        for p, row in zip(paths, rows):
            row["stsb"] = spearman(p)
            print(f"  STS-B {p.name}: {row['stsb']:.2f}", flush=True)
    for p in paths:
        p.close()
    if not args.no_cold:
        for row in rows:
            python = peer if row["path"].startswith("ST onnx") else sys.executable
            code = COLD[row["path"]].format(f=str(folder), o=str(onnx_folder)) + "; m.encode(['hello world'])"
            row["cold_s"], row["cold_rss_mib"] = cold_start(python, code)
            print(f"  cold start {row['path']}: {row['cold_s']:.2f}s {row['cold_rss_mib']:.0f} MiB", flush=True)
        cli = Path(sys.executable).parent / "sentencekit"
        print(f"# `sentencekit --help`: {cold_start(sys.executable, None, runs=5, argv=[str(cli), '--help'])[0]:.3f}s",
              flush=True)
    print_table(rows, corpus, reference)
    ce_rows = [] if args.no_reranker else rerankers(args, work)
    print_targets(rows, ce_rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "rerankers": ce_rows, "peaks": peaks,
                                                "peak_sources": peak_sources}, indent=2))


def rerankers(args: argparse.Namespace, work: Path) -> list[dict]:
    """CrossEncoder.predict: sentence-transformers torch fp32 against sentencekit's paths."""
    from sentence_transformers import CrossEncoder as STCE

    from sentencekit import CrossEncoder as SKCE

    folder = reranker_folder(work)
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    docs = [d.text for d in load_corpus(SAMPLE_CORPUS)]
    queries = [json.loads(line)["query"] for line in
               (ROOT / "src/sentencekit/data/sample_queries.jsonl").read_text().splitlines() if line.strip()]
    pairs = [(q, docs[(i * 7 + j) % len(docs)]) for i, q in enumerate(queries) for j in range(10)]
    models = {"ST CrossEncoder torch fp32": STCE(str(folder), device="cpu"),
              "sentencekit torch fp32": SKCE(str(folder), device="cpu"),
              "sentencekit onnx fp32": SKCE(str(folder), backend="onnx", num_threads=args.threads),
              "sentencekit onnx int8": SKCE(str(folder), backend="onnx", compute_dtype="int8",
                                            num_threads=args.threads)}
    times: dict[str, list[float]] = {k: [] for k in models}
    scores = {}
    for m in models.values():
        m.predict(pairs[:32], batch_size=args.batch_size)
    for r in range(args.repeats):
        for name, m in (models.items() if r % 2 == 0 else list(models.items())[::-1]):
            t0 = time.perf_counter()
            scores[name] = np.asarray(m.predict(pairs, batch_size=args.batch_size), dtype=np.float32)
            times[name].append(time.perf_counter() - t0)
    ref = "ST CrossEncoder torch fp32"
    print(f"\nCrossEncoder.predict, {len(pairs)} (query, passage) pairs, batch {args.batch_size} ({folder.name})")
    print(f"{'path':<28} {'pairs/s':>9} {'ratio':>7} {'max |score diff|':>17}")
    rows = []
    for name in models:
        best = min(times[name])
        diff = float(np.abs(scores[name] - scores[ref]).max())
        rows.append({"path": name, "pairs_per_s": len(pairs) / best, "ratio": min(times[ref]) / best,
                     "max_score_diff": diff})
        print(f"{name:<28} {len(pairs) / best:9.1f} {min(times[ref]) / best:6.2f}x {diff:17.5f}")
    return rows


if __name__ == "__main__":
    main()
