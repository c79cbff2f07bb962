"""OpenVINO against ONNX Runtime (and sentencekit's torch fp32), fp32 and int8, side by side in one run.

Every path encodes the same texts (STS-B test sentences as short texts, ~230-token passages stitched from
the bundled sample corpus as long ones; peers_lib.build_corpus), alternating path by path and round by round
so that machine drift hits all alike. In fp32 both runtimes run the same graph, the fp32 ONNX export (OpenVINO
compiles it with ``Core.read_model``, precision hint f32). In int8 each runs its own: ONNX Runtime the
calibrated dynamic-quantization ONNX graph (:mod:`sentencekit.engines.onnx_quantize`), OpenVINO the NNCF static
int8 IR made from the fp32 export (:mod:`sentencekit.engines.openvino_quantize`). Printed: texts/s, ratio to
ONNX Runtime of the same precision and to torch fp32, cosine to torch fp32 (mean/min, short and long),
STS-B test Spearman (x100), load time. Needs only the dev environment (no peer venv).

    nice python benchmarks/openvino_vs_onnx.py [--quick] [--threads N] [--json out.json]

Measured (``PYTHONPATH=src nice /work/main/.venv/bin/python benchmarks/openvino_vs_onnx.py``, 2026-12-06;
all-MiniLM-L6-v2, batch 32, 2 threads, best of 3 alternating rounds; 1024 short texts of ~14 tokens, 128 long
ones of ~230 cut at 256): AMD EPYC, 2 vCPUs (AVX-512 + VNNI + BF16, no AMX), shared with other jobs (load
average 3-4 on 2 vCPUs), so absolute rates move between runs (torch's most) and the ratios carry some noise;
openvino 2026.4.1, onnxruntime 1.32.0, nncf 3.4.0. "load s" is the first load of each path in this run: "onnx
fp32" includes the one-time ONNX export, "onnx int8" the one-time dynamic-int8 calibration and "openvino int8"
the one-time NNCF quantization (both from the cached fp32 export; later loads reuse their files):

    path              short t/s  x ORT  x torch   long t/s  x ORT  x torch  cos short     cos long       STS-B  load s
    torch fp32            508.1      -    1.00x       32.2      -    1.00x  1.0000/1.0000 1.0000/1.0000  82.03     3.0
    onnx fp32            1114.9  1.00x    2.19x       62.6  1.00x    1.94x  1.0000/1.0000 1.0000/1.0000  82.03     3.0
    openvino fp32        1181.3  1.06x    2.32x       70.4  1.12x    2.18x  1.0000/1.0000 1.0000/1.0000  82.03     0.5
    onnx int8            2118.6  1.00x    4.17x      109.9  1.00x    3.41x  0.9935/0.9698 0.9952/0.9927  81.64    40.4
    openvino int8        3052.3  1.44x    6.01x      160.4  1.46x    4.98x  0.9971/0.9744 0.9976/0.9965  82.07     8.7

Two more runs under heavier load (torch fp32 86 / 6.1 and 80 / 5.2 t/s) gave the same picture: openvino fp32
1.06x / 1.07x and 1.04x / 1.15x ONNX Runtime fp32; openvino int8 1.33x / 1.43x and 1.51x / 1.42x ONNX Runtime
int8, 2.60x / 2.51x and 3.10x / 2.49x openvino fp32; same cosines and STS-B. An
earlier run (before NNCF) had openvino fp32 at 1.27x / 1.10x and OpenVINO running ONNX Runtime's dynamic int8
graph at 0.39x / 0.62x. So ``auto`` picks OpenVINO for float32 on AVX-512 x86 and for int8 on AVX-512 VNNI
CPUs with nncf installed (:func:`sentencekit.engines.cpu.openvino_preferred`). The long texts come from the
same bundled corpus as the default calibration texts; the STS-B sentences (short cosines, STS-B) are outside it.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_lib import InProcess, alternate_rounds, build_corpus, cosine_stats, spearman  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def paths(folder: Path, threads: int) -> list[InProcess]:
    from sentencekit import SentenceTransformer as SK

    def on(backend: str, dtype: str):
        return lambda: SK(str(folder), backend=backend, compute_dtype=dtype, num_threads=threads)

    return [InProcess("torch fp32", "fp32", lambda: SK(str(folder), device="cpu", num_threads=threads)),
            InProcess("onnx fp32", "fp32", on("onnx", "float32")),
            InProcess("openvino fp32", "fp32", on("openvino", "float32")),
            InProcess("onnx int8", "int8", on("onnx", "int8")),
            InProcess("openvino int8", "int8", on("openvino", "int8"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--short", type=int, default=1024)
    parser.add_argument("--long", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--quick", action="store_true", help="small corpus, one round, no STS-B")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.short, args.long, args.repeats = 256, 32, 1

    import onnxruntime

    import sentencekit
    from sentencekit.engines.cpu import cpu_features
    from sentencekit.engines.openvino_session import require_openvino
    from sentencekit.hub import resolve_model

    work = Path(tempfile.mkdtemp(prefix="openvino-vs-onnx-"))
    folder = work / "model"  # a private copy: exports land beside it, not in site-packages
    shutil.copytree(resolve_model(args.model).path, folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
    print(f"# {platform.node()}: {cpu_features().describe()}, {args.threads} threads; {args.model}; batch "
          f"{args.batch_size}; openvino {require_openvino().get_version()}, onnxruntime {onnxruntime.__version__}, "
          f"sentencekit {sentencekit.__version__}", flush=True)
    corpus = build_corpus(args.short, args.long)
    runs = paths(folder, args.threads)
    loads = {}
    for p in runs:
        t0 = time.perf_counter()
        p.load()
        loads[p.name] = time.perf_counter() - t0
        print(f"  loaded {p.name} in {loads[p.name]:.1f}s ({p.model.engine.describe()})", flush=True)
    for p in runs:
        p.warm(corpus["short"][:64], args.batch_size)
    times, outputs = alternate_rounds(runs, corpus, args.repeats, args.batch_size)

    rows = []
    for p in runs:
        same_precision = "onnx " + p.name.split()[-1]
        row = {"path": p.name, "load_s": loads[p.name]}
        for kind, texts in corpus.items():
            best = min(times[p.name][kind])
            mean, low = cosine_stats(outputs[p.name][kind], outputs["torch fp32"][kind])
            row[kind] = {"texts_per_s": len(texts) / best, "x_ort": min(times[same_precision][kind]) / best
                         if p.name != "torch fp32" else None, "x_torch": min(times["torch fp32"][kind]) / best,
                         "cos_mean": mean, "cos_min": low, "seconds": times[p.name][kind]}
        if not args.quick:
            row["stsb"] = spearman(p)
        rows.append(row)
    print(f"\n{'path':<16} {'short t/s':>10} {'x ORT':>6} {'x torch':>8} {'long t/s':>10} {'x ORT':>6} "
          f"{'x torch':>8}  {'cos short':<13} {'cos long':<13} {'STS-B':>6} {'load s':>7}")
    for row in rows:
        cells = []
        for kind in corpus:
            c = row[kind]
            x_ort = "-" if c["x_ort"] is None else f"{c['x_ort']:.2f}x"
            cells.append(f"{c['texts_per_s']:10.1f} {x_ort:>6} {c['x_torch']:7.2f}x")
        short, long = row["short"], row["long"]
        print(f"{row['path']:<16} {' '.join(cells)}  {short['cos_mean']:.4f}/{short['cos_min']:.4f} "
              f"{long['cos_mean']:.4f}/{long['cos_min']:.4f} {row.get('stsb', float('nan')):6.2f} {row['load_s']:7.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
