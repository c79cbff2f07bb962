"""Where the ONNX path spends its time on long passages: ONNX Runtime's per-node profile of sentencekit's
exported graph (float32, or int8 with ``--int8``), grouped into the dense projections (Q / K / V /
attention output / feed-forward MatMuls), the attention core (scores, mask, softmax, mixing, head
transposes) and the rest (LayerNorm, GELU, bias adds, pooling), next to tokenization and padding; then
the wall and CPU time of each graph variant and rows-per-batch asked for, alternating round by round.

Variants: ``export`` (the graph as exported; ONNX Runtime fuses at session start), ``bert-fused`` (ONNX
Runtime's offline transformers optimizer: fused Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm),
``bert-mha`` (the same with MultiHeadAttention). CPU time (``time.process_time``) is reported beside wall
time because on a shared machine it moves far less with other jobs' load.

    PYTHONPATH=src nice /work/main/.venv/bin/python benchmarks/onnx_profile.py \
        --variants export,bert-fused,bert-mha --rows 1,4,16 --threads 1 --spin both

Measured (2026-12-06, 2 AMD EPYC cores shared with other jobs, load average 1.4-3.5, onnxruntime 1.32;
``--rows 4 --spin both --repeats 6``): 32 passages, 7,265 tokens (197-256), padding 1.3%, tokenization
~36 ms; kernel time: dense MatMul 70.2%, attention core 19.0%, the rest 10.8%; 1.64 s wall (103 useful
GFLOP/s; torch's fp32 matmul measured 60-86 GFLOP/s on this CPU) with sleeping threads, 2.23 s spinning.
With ``--threads 1``: the exported graph 935 ms CPU at 1 row a batch, 1,000 at 4, 1,168 at 16; the offline
BERT fusion 1,018 / 1,064 / 1,248; with MultiHeadAttention 1,083 / 1,119 / 1,323 (outputs within 2e-7).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_lib import build_corpus, corpus_flops  # noqa: E402

#: node-name patterns of the attention core in a transformers BERT export (eager attention)
ATTENTION_CORE = re.compile(r"/attention/self/(MatMul|Softmax|Add|Transpose|Div|Mul|Reshape)|^Attention|"
                            r"MultiHeadAttention")
DENSE = re.compile(r"/(query|key|value|dense)/MatMul|/MatMul_\w*dense")


def session(graph: Path, threads: int, profile_prefix: str | None = None, spin: bool = False):
    import onnxruntime as ort

    from sentencekit.engines.onnx_session import make_session

    if profile_prefix is None:
        return make_session(graph, threads, spin=spin)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def fused(graph: Path, out: Path, heads: int, hidden: int, mha: bool) -> Path:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_multi_head_attention = mha
    model = optimize_model(str(graph), model_type="bert", num_heads=heads, hidden_size=hidden,
                           optimization_options=options, opt_level=0, use_gpu=False)
    model.save_model_to_file(str(out))
    return out


def run(sess, batches: list[dict]) -> np.ndarray:
    names = [i.name for i in sess.get_inputs()]
    out = []
    for batch in batches:
        feeds = {k: v for k, v in batch.items() if k in names}
        if "prompt_length" in names:
            feeds["prompt_length"] = np.array(0, dtype=np.int64)
        out.append(sess.run([sess.get_outputs()[0].name], feeds)[0])
    return np.concatenate(out)


def breakdown(profile_file: str) -> dict[str, float]:
    """Kernel microseconds per group (dense / attention core / other) and per op type."""
    groups: dict[str, float] = defaultdict(float)
    for event in json.loads(Path(profile_file).read_text()):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name, op = event["name"][: -len("_kernel_time")], event["args"].get("op_name", "?")
        if op in ("Attention", "MultiHeadAttention") or ATTENTION_CORE.search(name):
            group = "attention core"
        elif op in ("MatMul", "FusedMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul") and DENSE.search(name):
            group = "dense MatMul"
        else:
            group = "other"
        groups[group] += event["dur"]
        groups[f"  op {op}"] += event["dur"]
    return dict(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--long", type=int, default=32)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rows", default="4", help="rows per batch to time, comma-separated")
    parser.add_argument("--variants", default="export", help="export, bert-fused, bert-mha (comma-separated)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--int8", action="store_true", help="profile the int8 graph (variants: export only)")
    parser.add_argument("--spin", choices=("off", "on", "both"), default="off",
                        help="intra-op threads spin while idle (ONNX Runtime's default) or sleep (sentencekit's)")
    args = parser.parse_args()

    from sentencekit import SentenceTransformer
    from sentencekit.hub import resolve_model

    work = Path(tempfile.mkdtemp(prefix="onnx-profile-"))
    folder = work / "model"
    shutil.copytree(resolve_model(args.model).path, folder, ignore=shutil.ignore_patterns("onnx"))
    model = SentenceTransformer(str(folder), backend="onnx", compute_dtype="int8" if args.int8 else "float32")
    engine = model.engine
    config = json.loads((folder / "config.json").read_text())
    texts = build_corpus(8, args.long)["long"]
    tok = engine.tokenizer
    t0 = time.perf_counter()
    enc = tok.encode(texts)
    tokenize_s = time.perf_counter() - t0
    order = np.argsort(-enc.lengths, kind="stable")
    graphs = {}
    for variant in args.variants.split(","):
        if variant == "export":
            graphs[variant] = engine.graph
        else:
            graphs[variant] = fused(engine.graph, work / f"{variant}.onnx", config["num_attention_heads"],
                                    config["hidden_size"], mha=variant == "bert-mha")
    flops = corpus_flops(folder, list(enc.lengths))
    print(f"# {len(texts)} long passages, {int(enc.lengths.sum())} tokens ({enc.lengths.min()}-{enc.lengths.max()}); "
          f"tokenization {tokenize_s * 1000:.1f} ms; {args.threads} threads; useful {flops / 1e9:.1f} GFLOP")

    rows_list = [int(r) for r in args.rows.split(",")]
    plans = {r: [tok.pad(enc, order[i:i + r]) for i in range(0, len(order), r)] for r in rows_list}
    for r, batches in plans.items():
        padded = sum(b["input_ids"].size for b in batches)
        print(f"# rows {r}: padding {1 - enc.lengths.sum() / padded:.1%} of the computed tokens")

    # the profile: first rows setting, each variant
    for variant, graph in graphs.items():
        sess = session(graph, args.threads, str(work / f"profile-{variant}"))
        run(sess, plans[rows_list[0]])
        groups = breakdown(sess.end_profiling())
        total = sum(v for k, v in groups.items() if not k.startswith("  "))
        print(f"\nprofile {variant}, rows {rows_list[0]}: kernel time {total / 1000:.0f} ms")
        for name, micros in sorted(groups.items(), key=lambda kv: (kv[0].startswith("  "), -kv[1]))[:14]:
            print(f"  {name:<28} {micros / 1000:8.1f} ms {micros / total:6.1%}")

    spins = {"off": [False], "on": [True], "both": [False, True]}[args.spin]
    sessions = {(v, spin): session(g, args.threads, spin=spin) for v, g in graphs.items() for spin in spins}
    keys = [(v, r, spin) for v in graphs for r in rows_list for spin in spins]
    wall: dict[tuple, list[float]] = {k: [] for k in keys}
    cpu: dict[tuple, list[float]] = {k: [] for k in keys}
    ref = run(sessions[keys[0][0], keys[0][2]], plans[keys[0][1]])
    diffs = {k: float(np.abs(run(sessions[k[0], k[2]], plans[k[1]]) - ref).max()) for k in keys}
    for rep in range(args.repeats):
        for key in keys if rep % 2 == 0 else keys[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            run(sessions[key[0], key[2]], plans[key[1]])
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    print(f"\n{'variant':<12} {'rows':>4} {'spin':>4} {'wall best ms':>12} {'texts/s':>8} {'GFLOP/s':>8} "
          f"{'cpu best ms':>11} {'cpu median':>10} {'max|diff|':>9}")
    for key in keys:
        best = min(wall[key])
        print(f"{key[0]:<12} {key[1]:>4} {'on' if key[2] else 'off':>4} {best * 1000:12.1f} "
              f"{len(texts) / best:8.1f} {flops / best / 1e9:8.1f} "
              f"{min(cpu[key]) * 1000:11.1f} {np.median(cpu[key]) * 1000:10.1f} {diffs[key]:9.1e}")


if __name__ == "__main__":
    main()
