"""Helpers of ``compare_peers.py``: paths (in this process or in a worker of another environment),
the corpus, FLOP counts, matmul peaks, cold starts, STS-B and the table."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# A worker runs in the sentence-transformers 5.x + optimum environment: load the model with the onnx
# backend (exporting / quantizing it once, untimed), then time encode() calls asked for on stdin.
WORKER = r"""
import json, sys, time, os
import numpy as np
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path
folder, file_name = sys.argv[1], sys.argv[2]
from sentence_transformers import SentenceTransformer
if not (Path(folder) / "onnx" / "model.onnx").is_file():
    m = SentenceTransformer(folder, device="cpu", backend="onnx")
    m.save_pretrained(folder)
if not (Path(folder) / file_name).is_file():
    from sentence_transformers import export_dynamic_quantized_onnx_model
    export_dynamic_quantized_onnx_model(SentenceTransformer(folder, device="cpu", backend="onnx"),
                                        "avx512_vnni", folder)
model = SentenceTransformer(folder, device="cpu", backend="onnx", model_kwargs={"file_name": file_name})
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req.get("cmd") == "quit":
        break
    texts = json.loads(Path(req["texts"]).read_text())
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=req["batch_size"])
    seconds = time.perf_counter() - t0
    if req.get("out"):
        np.save(req["out"], np.asarray(emb, dtype=np.float32))
    print(json.dumps({"seconds": seconds}), flush=True)
"""


class InProcess:
    """A model of this environment, timed in this process."""

    def __init__(self, name: str, precision: str, factory: Callable[[], Any]) -> None:
        self.name, self.precision, self.factory = name, precision, factory
        self.model: Any = None

    def load(self) -> None:
        self.model = self.factory()

    def warm(self, texts: list[str], batch_size: int) -> None:
        self.model.encode(texts, batch_size=batch_size)

    def encode(self, texts: list[str], batch_size: int, keep: bool = True) -> tuple[float, np.ndarray | None]:
        t0 = time.perf_counter()
        emb = self.model.encode(texts, batch_size=batch_size)
        seconds = time.perf_counter() - t0
        return seconds, (np.asarray(emb, dtype=np.float32) if keep else None)

    def close(self) -> None:
        self.model = None


class Worker:
    """A model of another environment (sentence-transformers 5.x with optimum), timed in its process."""

    def __init__(self, name: str, precision: str, python: str, folder: Path, file_name: str) -> None:
        self.name, self.precision = name, precision
        self.args = [python, "-c", WORKER, str(folder), file_name]
        self.proc: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="peer-worker-"))

    def load(self) -> None:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL)
        self._read()

    def _read(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"worker {self.name} stopped (run it by hand to see why: {self.args[0]})")

    def encode(self, texts: list[str], batch_size: int, keep: bool = True) -> tuple[float, np.ndarray | None]:
        assert self.proc is not None and self.proc.stdin is not None
        src = self.tmp / f"texts-{len(texts)}-{hash(tuple(texts[:3]))}.json"
        if not src.is_file():
            src.write_text(json.dumps(texts))
        out = self.tmp / "out.npy" if keep else None
        self.proc.stdin.write(json.dumps({"texts": str(src), "batch_size": batch_size,
                                          "out": str(out) if out else None}) + "\n")
        self.proc.stdin.flush()
        seconds = self._read()["seconds"]
        return seconds, (np.load(out) if out else None)

    def warm(self, texts: list[str], batch_size: int) -> None:
        self.encode(texts, batch_size, keep=False)

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def alternate_rounds(paths: list[Any], corpus: dict[str, list[str]], repeats: int, batch_size: int
                     ) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, np.ndarray]]]:
    """Time every path on every text set, ``repeats`` rounds, alternating the paths' order round by round so
    that machine drift hits all alike. Returns seconds per path and set (one per round) and the first round's
    embeddings per path and set."""
    times: dict[str, dict[str, list[float]]] = {p.name: {k: [] for k in corpus} for p in paths}
    outputs: dict[str, dict[str, np.ndarray]] = {p.name: {} for p in paths}
    for r in range(repeats):
        for kind, texts in corpus.items():
            for p in paths if r % 2 == 0 else paths[::-1]:
                seconds, emb = p.encode(texts, batch_size, keep=r == 0)
                times[p.name][kind].append(seconds)
                if emb is not None:
                    outputs[p.name][kind] = emb
        print(f"  round {r + 1}/{repeats} done", flush=True)
    return times, outputs


def build_corpus(n_short: int, n_long: int) -> dict[str, list[str]]:
    """Short: shuffled STS-B test sentences (~14 tokens). Long: passages stitched from the bundled sample
    corpus (~170 words, ~230 tokens). Fixed seed: the same corpus on every run."""
    from sentencekit.datasets import load_stsb
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    rng = random.Random(0)
    pairs = load_stsb("test")
    short = [p.sentence1 for p in pairs] + [p.sentence2 for p in pairs]
    rng.shuffle(short)
    docs = [d.text for d in load_corpus(SAMPLE_CORPUS)]
    long = []
    for _ in range(n_long):
        parts, words = [], 0
        while words < 170:
            text = rng.choice(docs)
            parts.append(text)
            words += len(text.split())
        long.append(" ".join(parts))
    return {"short": short[:n_short], "long": long}


def corpus_flops(folder: Path, lengths: list[int]) -> float:
    """Useful FLOPs of a BERT-style encoder over real (unpadded) tokens: the dense layers
    (2 x (4 h^2 + 2 h ffn) per token and layer) plus attention scores and mixing (4 h n per token)."""
    config = json.loads((folder / "config.json").read_text())
    h, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    n = np.asarray(lengths, dtype=np.float64)
    return float(layers * (n.sum() * 2 * (4 * h * h + 2 * h * ffn) + (4 * h * n * n).sum()))


def matmul_peaks(threads: int, m: int = 2048, k: int = 384, n: int = 1536
                 ) -> tuple[dict[str, float], dict[str, str]]:
    """GFLOP/s (GOP/s for int8) of a transformer-shaped matrix product, per precision: the best of torch
    (oneDNN / MKL) and ONNX Runtime (MLAS) on this machine, so that no path's share can pass 100% because
    one library's GEMM is slower here (on AMD EPYC, torch's fp32 matmul reaches ~60% of MLAS's).
    Returns the peaks and, per precision, the library that reached it."""
    import torch

    torch.set_num_threads(threads)
    out: dict[str, float] = {}
    by: dict[str, str] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
        if dtype == torch.int8:
            a = torch.randint(-100, 100, (m, k), dtype=dtype)
            b = torch.randint(-100, 100, (k, n), dtype=dtype)
            fn = getattr(torch, "_int_mm", None)
            if fn is None:
                continue
        else:
            a, b, fn = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.matmul
        out[name], by[name] = 2 * m * k * n / _best_seconds(lambda f=fn, x=a, y=b: f(x, y)) / 1e9, "torch"
    for name, value in _ort_matmul_peaks(threads, m, k, n).items():
        if value > out.get(name, 0.0):
            out[name], by[name] = value, "onnxruntime"
    return out, by


def _best_seconds(fn: Callable[[], Any]) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        best = min(best, (time.perf_counter() - t0) / 10)
    return best


def _ort_matmul_peaks(threads: int, m: int, k: int, n: int) -> dict[str, float]:
    """ONNX Runtime's fp32 ``MatMul`` and u8 x s8 ``MatMulInteger`` (what dynamic int8 graphs run) on one
    ``[m, k] x [k, n]`` product with the weight as an initializer, as in an exported model."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    out = {}
    for name, op, a, w in (("fp32", "MatMul", rng.standard_normal((m, k), dtype=np.float32),
                            rng.standard_normal((k, n), dtype=np.float32)),
                           ("int8", "MatMulInteger", rng.integers(0, 255, (m, k), dtype=np.uint8),
                            rng.integers(-100, 100, (k, n), dtype=np.int8))):
        elem = TensorProto.FLOAT if name == "fp32" else TensorProto.UINT8
        out_elem = TensorProto.FLOAT if name == "fp32" else TensorProto.INT32
        graph = helper.make_graph([helper.make_node(op, ["a", "w"], ["y"])], "peak",
                                  [helper.make_tensor_value_info("a", elem, [m, k])],
                                  [helper.make_tensor_value_info("y", out_elem, [m, n])],
                                  [numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        out[name] = 2 * m * k * n / _best_seconds(lambda s=session, x=a: s.run(None, {"a": x})) / 1e9
    return out


def cosine_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(cos.mean()), float(cos.min())


def spearman(path: Any) -> float:
    """STS-B test Spearman (x100) of cosine similarities."""
    from scipy.stats import spearmanr

    from sentencekit.datasets import load_stsb

    pairs = load_stsb("test")
    _, a = path.encode([p.sentence1 for p in pairs], 32)
    _, b = path.encode([p.sentence2 for p in pairs], 32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100 * float(spearmanr(cos, [p.score for p in pairs]).statistic)


def cold_start(python: str, code: str | None, runs: int = 3, expect_exit: int = 0,
               argv: list[str] | None = None) -> tuple[float, float]:
    """Median wall time and peak RSS (MiB) of a fresh interpreter running ``code`` (or of ``argv``).

    The command runs under ``/usr/bin/time``: a child forked from this (large) process would inherit
    its peak RSS through exec, so the small ``time`` process forks it and reports its own peak."""
    walls, rss = [], []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
            cmd = ["/usr/bin/time", "-o", out.name, "-f", "%M", *(argv or [python, "-c", code])]
            t0 = time.perf_counter()
            status = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
            walls.append(time.perf_counter() - t0)
            rss.append(int(out.read().strip().splitlines()[-1]) / 1024)
        if status != expect_exit:
            raise RuntimeError(f"cold start failed: {argv or [python, '-c', code]}")
    return statistics.median(walls), statistics.median(rss)


def reranker_folder(work: Path) -> Path:
    """The installed reranker (examples/train_stsb_reranker.py --install), else MiniLM with a fresh
    one-label head: the architecture of cross-encoder/ms-marco-MiniLM-L6-v2, so the speed is telling."""
    from sentencekit.search.defaults import installed_reranker

    found = installed_reranker()
    if found is not None:  # a private copy: the ONNX exports land beside it, not in the user's folder
        import shutil

        shutil.copytree(found, work / found.name, ignore=shutil.ignore_patterns("onnx"))
        return work / found.name
    import torch

    from sentencekit.families.reranker import CrossEncoder
    from sentencekit.hub import resolve_model

    torch.manual_seed(0)
    folder = work / "minilm-reranker"
    model = CrossEncoder(str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path), num_labels=1,
                         device="cpu")
    model.untrained_head = None  # a random head is fine here: only the speed is measured
    model.save(folder)
    return folder


def print_table(rows: list[dict], corpus: dict[str, list[str]], reference: str) -> None:
    print(f"\nall-MiniLM-L6-v2 encode: {len(corpus['short'])} short texts, {len(corpus['long'])} long passages; "
          f"ratio = speed / {reference}; peak = useful FLOP/s / matmul peak of the path's precision")
    head = (f"{'path':<26} | {'short t/s':>9} {'tok/s':>7} {'ratio':>6} {'peak':>5} | {'long t/s':>8} "
            f"{'tok/s':>7} {'ratio':>6} {'peak':>5} | {'cos short mean/min':>18} | {'cos long mean/min':>17} | "
            f"{'STS-B':>5} | {'cold s':>6} {'MiB':>5}")
    print(head)
    print("-" * len(head))
    for row in rows:
        s, lg = row["short"], row["long"]
        cells = [f"{row['path']:<26}", "|", f"{s['texts_per_s']:9.1f}", f"{s['tokens_per_s']:7.0f}",
                 f"{s['ratio']:5.2f}x", f"{s['peak_share']:5.0%}", "|", f"{lg['texts_per_s']:8.1f}",
                 f"{lg['tokens_per_s']:7.0f}", f"{lg['ratio']:5.2f}x", f"{lg['peak_share']:5.0%}", "|",
                 f"{s['cos_mean']:.5f}/{s['cos_min']:.5f}".rjust(18), "|",
                 f"{lg['cos_mean']:.5f}/{lg['cos_min']:.5f}".rjust(17), "|",
                 f"{row.get('stsb', float('nan')):5.2f}", "|",
                 f"{row.get('cold_s', float('nan')):6.2f}", f"{row.get('cold_rss_mib', float('nan')):5.0f}"]
        print(" ".join(cells))


def print_targets(rows: list[dict], ce_rows: list[dict]) -> None:
    """The issue's targets, checked on this run's figures."""
    by = {r["path"]: r for r in rows}

    def speed(path: str, kind: str) -> float:
        return by[path][kind]["texts_per_s"] if path in by else float("nan")

    def line(label: str, value: float, goal: float, unit: str = "x", lower: bool = False) -> None:
        ok = value <= goal if lower else value >= goal
        sign = "<=" if lower else ">="
        print(f"  {'met ' if ok else 'MISS'} {label:<58} {value:7.3f}{unit} (target {sign} {goal}{unit})")

    print("\nTargets")
    ref_stsb = by.get("ST torch fp32", {}).get("stsb", float("nan"))
    backends = [b for b in ("onnx", "openvino") if f"sentencekit {b} fp32" in by]
    for backend in backends:  # issue 19: each CPU backend against the peer
        fp32, int8 = by[f"sentencekit {backend} fp32"], by[f"sentencekit {backend} int8"]
        for kind, goal in (("short", 1.6), ("long", 1.4)):
            line(f"{backend} fp32 / ST torch fp32, {kind}", speed(fp32["path"], kind) / speed("ST torch fp32", kind),
                 goal)
        line(f"{backend} fp32 share of the fp32 matmul peak, long", fp32["long"]["peak_share"], 0.75, "")
        line(f"{backend} fp32 cosine min to fp32 (short, long)", min(fp32[k]["cos_min"] for k in ("short", "long")),
             0.99999, "")
        if "ST onnx int8" in by:
            for kind, goal in (("short", 1.3), ("long", 1.6)):
                line(f"{backend} int8 / ST onnx int8, {kind}", speed(int8["path"], kind) / speed("ST onnx int8", kind),
                     goal)
        line(f"{backend} int8 cosine mean to fp32 (worst of short, long)",
             min(int8[k]["cos_mean"] for k in ("short", "long")), 0.99, "")
        if "stsb" in int8:
            line(f"{backend} int8 STS-B drop vs fp32 (points)", ref_stsb - int8["stsb"], 0.5, "", lower=True)
    line("bf16 / ST torch bf16, short", speed("sentencekit torch bf16", "short") / speed("ST torch bf16", "short"),
         1.25)
    line("bf16 cosine min to fp32", min(by["sentencekit torch bf16"][k]["cos_min"] for k in ("short", "long")),
         0.999, "")
    if "stsb" in by["sentencekit torch bf16"]:
        line("bf16 STS-B drop vs fp32 (points)", ref_stsb - by["sentencekit torch bf16"]["stsb"], 0.2, "",
             lower=True)
    if "cold_s" in by["sentencekit onnx fp32"]:
        line("cold start onnx fp32 (s)", by["sentencekit onnx fp32"]["cold_s"], 1.0, "s", lower=True)
        line("cold start onnx fp32 peak RSS (MiB)", by["sentencekit onnx fp32"]["cold_rss_mib"], 300, "", lower=True)
    for row in ce_rows:
        if row["path"].startswith("sentencekit onnx"):
            line(f"CrossEncoder {row['path']} / ST CrossEncoder torch fp32", row["ratio"], 1.5)
