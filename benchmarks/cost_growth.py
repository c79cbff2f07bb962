"""Cost growth of all-MiniLM-L6-v2 on the CPU, sentencekit against sentence-transformers 6.2: texts/s and
peak memory as the corpus grows and as the texts grow.

1. Corpus size. ``sentencekit embed-corpus`` (one process, the default ``auto`` backend = ONNX here;
   ``--corpus-torch`` adds ``--backend torch``; default 10,000-row shards) against the peer's closest
   equivalent: ``model.encode(all texts)`` then ``np.save`` in a fresh process (torch: its default).
   sentence-transformers has no sharded corpus writer, so the in-memory encode is what its users write;
   chunking it by hand would be our tool rewritten, not the peer. Short
   texts are STS-B test sentences (~14 tokens), cycled to N rows, as a JSON-lines file. Each point is a
   fresh process (wall time includes start, model load and writing the output); peak RSS is the child's
   ``getrusage`` maxrss, read through GNU ``time`` (a child forked from this process would inherit our own
   peak through exec). Then least-squares fits ``seconds = a + b*n`` and ``MiB = c + d*n`` extrapolated to
   100k and 1M texts, and a check whether each side's memory stays flat with n. ``--sizes`` run on both
   sides; ``--ours-sizes`` (past one shard) only on ours: the peer would take most of the time budget there.
2. Sequence length. A fixed number of texts of exactly 64/128/256/512 tokens (the model's tokenizer, [CLS]
   and [SEP] included; sample-corpus passages repeated and cut at the token count, ``max_seq_length`` raised
   to 512 on every side), encoded in a fresh process per side and length; texts/s and tokens/s of the
   timed encode (after one warm batch) and the process's peak RSS. Ours: torch and ONNX; peer: torch.

Sides alternate order point by point. Everything runs under ``nice`` with ``OMP_WAIT_POLICY=PASSIVE``
(on a loaded machine torch's spinning OpenMP threads ran ST ~4x slower in a first try at a similar load); the machine is
shared, so single points are noisy: read the fits and the ratios, not the third digit.

    /work/main/.venv-peer/bin/python benchmarks/cost_growth.py [--sizes 500,1000,2000,4000]
        [--ours-sizes 10000,20000,40000] [--corpus-torch] [--lengths 64,128,256,512] [--seq-texts 32]

(PYTHONPATH=src to run a worktree's sentencekit; the peer venv holds sentence-transformers 6.2 and
sentencekit, editable.)

MEASURED 2026-12-06 on 2 shared cores loaded by other jobs (`uptime` load average 1.8 / 4.1 / 4.9 at the
start, 1.4 / 2.7 / 4.1 at the end: the other jobs were winding down, so the corpus points past 4000 ran on a
quieter machine than the shared ones; the time fit of ours leans on those), with

    PYTHONPATH=src /work/main/.venv-peer/bin/python benchmarks/cost_growth.py \
        --ours-sizes 10000,20000,40000,80000 --json run.json

    Corpus size (short texts, ~14 tokens; wall time of a fresh process: start, load, encode, write)
    side                           n       s  texts/s    MiB t/s ratio MiB ratio
    sk embed-corpus onnx         500     2.0    250.3    354     3.99x     0.54x
    sk embed-corpus onnx        1000     2.9    344.1    358     3.64x     0.55x
    sk embed-corpus onnx        2000     4.8    412.4    384     3.26x     0.57x
    sk embed-corpus onnx        4000     8.7    458.9    379     3.01x     0.57x
    sk embed-corpus onnx       10000    18.3    547.3    454         -         -
    sk embed-corpus onnx       20000    19.1   1048.1    512         -         -
    sk embed-corpus onnx       40000    37.8   1059.4    563         -         -
    sk embed-corpus onnx       80000    74.3   1076.9    565         -         -
    ST encode+np.save            500     8.0     62.8    651     1.00x     1.00x
    ST encode+np.save           1000    10.6     94.5    649     1.00x     1.00x
    ST encode+np.save           2000    15.8    126.7    678     1.00x     1.00x
    ST encode+np.save           4000    26.2    152.7    665     1.00x     1.00x

    Fit seconds = a + b*n over the measured points; MiB = c + d*n over them too, or through the two
    largest when those pass 3 shards (30k texts: embed-corpus's peak settles only after ~3 shards, so a
    line through all points would overstate its growth); extrapolated; memory 'flat' when d < 5 MiB
    per 10k texts. Points measured at different loads: see the texts/s column.
    side                        a s texts/s 1/b  100k s    1M s  c MiB d MiB/10k 100k MiB  1M MiB memory
    sk embed-corpus onnx        3.7      1138.4      92     882    561       0.5      566     608   flat
    ST encode+np.save           5.4       192.0     526    5213    652      48.3     1135    5484  grows

    Sequence length (32 texts of exactly N tokens, batch 32; ratio = ours / ST torch)
    side      tokens  texts/s tokens/s    MiB t/s ratio MiB ratio
    ST torch      64    111.4     7127    650     1.00x     1.00x
    ST torch     128     52.1     6665    691     1.00x     1.00x
    ST torch     256     22.6     5792    833     1.00x     1.00x
    ST torch     512     11.7     6004    966     1.00x     1.00x
    sk onnx       64    240.9    15420    228     2.16x     0.35x
    sk onnx      128    109.4    14002    230     2.10x     0.33x
    sk onnx      256     52.0    13315    243     2.30x     0.29x
    sk onnx      512     20.3    10411    303     1.73x     0.31x
    sk torch      64     88.4     5660    510     0.79x     0.78x
    sk torch     128     51.1     6547    515     0.98x     0.75x
    sk torch     256     26.1     6671    520     1.15x     0.62x
    sk torch     512     10.1     5165    533     0.86x     0.55x

An earlier run at load 5.8-7.1 (default sizes): ours 480-500 texts/s at 10k-40k and 434 / 500 / 577 MiB at
10k / 20k / 40k, the peer 59-159 texts/s at 500-4000; sequence-length ratios in the same ranges (onnx
1.6-2.2x; torch 0.5-1.3x, one batch per point, so very noisy). A per-shard trace of ``embed_corpus``
(shard_size 10k, 80k texts, /proc VmHWM): 428 MiB after shard 1, 479 after 2, 496-500 from shard 3 to 8; the
final assembly (``_assemble``) adds ~110 MiB on top: 611 MiB at 80k as at 40k. The Python heap stays at
~45 MiB throughout (tracemalloc), so the rise over the first shards is native (ONNX Runtime, allocator).
The peer's memory line is fitted over 500-4000 texts, where its growth (~5 KB a text) is near the noise;
by construction its embeddings alone need 1M x 384 x 4 B = 1.46 GiB, held while the batches are stacked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_lib import build_corpus  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
NICE = ["nice", "-n", "10"]

# The peer's corpus run: read the file, encode every text in memory, save the array.
PEER_CORPUS = r"""
import json, sys, numpy as np, torch
from sentence_transformers import SentenceTransformer
folder, src, out = sys.argv[1:4]
torch.set_num_threads(2)
texts = [json.loads(line)["text"] for line in open(src, encoding="utf-8")]
model = SentenceTransformer(folder, device="cpu")
np.save(out, model.encode(texts, batch_size=32))
"""

# One timed encode of a sequence-length point, in a fresh process of either side.
SEQ_CHILD = r"""
import json, sys, time
side, folder, src, max_len = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = json.load(open(src, encoding="utf-8"))
if side == "ST torch":
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(2)
    model = SentenceTransformer(folder, device="cpu")
else:
    from sentencekit import SentenceTransformer
    model = (SentenceTransformer(folder, device="cpu", backend="torch", num_threads=2) if side == "sk torch"
             else SentenceTransformer(folder, backend="onnx", num_threads=2))
model.max_seq_length = max_len
model.encode(texts[:32], batch_size=32)
t0 = time.perf_counter()
emb = model.encode(texts, batch_size=32)
print(json.dumps({"seconds": time.perf_counter() - t0, "dim": len(emb[0])}))
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of ``argv`` run under nice and GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", rss.name, "-f", "%M", *NICE, *argv], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:4]} failed:\n{proc.stderr[-2000:]}")
        return wall, int(rss.read().strip().splitlines()[-1]) / 1024, proc.stdout


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of ys ~ a + b*xs."""
    b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(a), float(b)


def corpus_sweep(folder: Path, work: Path, sizes: list[int], ours_only: list[int], with_torch: bool,
                 env: dict[str, str]) -> dict[str, list[dict]]:
    short = build_corpus(10_000, 0)["short"]
    sides = {
        "sk embed-corpus torch": lambda src, out: [sys.executable, "-m", "sentencekit", "embed-corpus", str(src),
                                                   "--out", str(out), "--model", str(folder), "--backend", "torch",
                                                   "--threads", "2", "--local-files-only"],
        "sk embed-corpus onnx": lambda src, out: [sys.executable, "-m", "sentencekit", "embed-corpus", str(src),
                                                  "--out", str(out), "--model", str(folder), "--threads", "2",
                                                  "--local-files-only"],
        "ST encode+np.save": lambda src, out: [sys.executable, "-c", PEER_CORPUS, str(folder), str(src), str(out)],
    }
    if not with_torch:
        del sides["sk embed-corpus torch"]
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for i, n in enumerate(sizes + ours_only):
        src = work / f"corpus-{n}.jsonl"
        with open(src, "w", encoding="utf-8") as f:
            for j in range(n):
                f.write(json.dumps({"text": short[j % len(short)]}) + "\n")
        order = list(sides) if i % 2 == 0 else list(sides)[::-1]
        if n in ours_only:  # the peer is too slow here for the time the script may take
            order = [name for name in order if name.startswith("sk")]
        for name in order:
            out = work / f"out-{n}-{name.replace(' ', '_')}.{'npy' if name.startswith('ST') else 'parquet'}"
            wall, mib, _ = timed(sides[name](src, out), env)
            results[name].append({"n": n, "seconds": wall, "rss_mib": mib})
            print(f"  {name:<24} n={n:>7}: {wall:7.1f} s  {n / wall:7.1f} texts/s  {mib:6.0f} MiB", flush=True)
            out.unlink(missing_ok=True)
        src.unlink()
    return results


def print_corpus(results: dict[str, list[dict]], peer: str = "ST encode+np.save") -> list[str]:
    lines = ["Corpus size (short texts, ~14 tokens; wall time of a fresh process: start, load, encode, write)",
             f"{'side':<24} {'n':>7} {'s':>7} {'texts/s':>8} {'MiB':>6} {'t/s ratio':>9} {'MiB ratio':>9}"]
    by_n = {r["n"]: r for r in results[peer]}
    for name, rows in results.items():
        for r in rows:
            p = by_n.get(r["n"])
            ratios = (f"{p['seconds'] / r['seconds']:8.2f}x {r['rss_mib'] / p['rss_mib']:8.2f}x" if p
                      else f"{'-':>9} {'-':>9}")
            lines.append(f"{name:<24} {r['n']:>7} {r['seconds']:7.1f} {r['n'] / r['seconds']:8.1f} "
                         f"{r['rss_mib']:6.0f} {ratios}")
    lines += ["", "Fit seconds = a + b*n over the measured points; MiB = c + d*n over them too, or through the two",
              "largest when those pass 3 shards (30k texts: embed-corpus's peak settles only after ~3 shards, so a",
              "line through all points would overstate its growth); extrapolated; memory 'flat' when d < 5 MiB",
              "per 10k texts. Points measured at different loads: see the texts/s column.",
              f"{'side':<24} {'a s':>6} {'texts/s 1/b':>11} {'100k s':>7} {'1M s':>7} {'c MiB':>6} "
              f"{'d MiB/10k':>9} {'100k MiB':>8} {'1M MiB':>7} {'memory':>6}"]
    for name, rows in results.items():
        ns = [r["n"] for r in rows]
        a, b = fit(ns, [r["seconds"] for r in rows])
        mem_rows = rows[-2:] if len(rows) > 2 and rows[-2]["n"] >= 30_000 else rows
        c, d = fit([r["n"] for r in mem_rows], [r["rss_mib"] for r in mem_rows])
        lines.append(f"{name:<24} {a:6.1f} {1 / b:11.1f} {a + b * 1e5:7.0f} {a + b * 1e6:7.0f} {c:6.0f} "
                     f"{d * 1e4:9.1f} {c + d * 1e5:8.0f} {c + d * 1e6:7.0f} {'flat' if d * 1e4 < 5 else 'grows':>6}")
    return lines


def exact_length_texts(folder: Path, length: int, count: int) -> list[str]:
    """``count`` texts of exactly ``length`` tokens ([CLS] and [SEP] included) under the model's tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    passages = build_corpus(0, count)["long"]
    texts = []
    for k, passage in enumerate(passages):
        ids = tok(passage, add_special_tokens=False)["input_ids"]
        ids = (ids * (length // len(ids) + 2))[k % 7:]  # repeated, starting at varied offsets
        want = length - 2
        while True:  # decode/re-encode can merge or split a piece at the cut: adjust until exact
            text = tok.decode(ids[:want])
            got = len(tok(text)["input_ids"])
            if got == length or want <= 0:
                break
            want += length - got
        texts.append(text)
    return texts


def seq_sweep(folder: Path, work: Path, lengths: list[int], count: int, env: dict[str, str]) -> list[dict]:
    sides = ["sk torch", "sk onnx", "ST torch"]
    rows = []
    for i, length in enumerate(lengths):
        src = work / f"seq-{length}.json"
        src.write_text(json.dumps(exact_length_texts(folder, length, count)), encoding="utf-8")
        for side in sides if i % 2 == 0 else sides[::-1]:
            _, mib, out = timed([sys.executable, "-c", SEQ_CHILD, side, str(folder), str(src), "512"], env)
            seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
            rows.append({"side": side, "tokens": length, "texts_per_s": count / seconds,
                         "tokens_per_s": count * length / seconds, "rss_mib": mib})
            print(f"  {side:<9} {length:>4} tokens: {count / seconds:7.1f} texts/s  {mib:6.0f} MiB", flush=True)
    return rows


def print_seq(rows: list[dict], count: int) -> list[str]:
    peer = {r["tokens"]: r for r in rows if r["side"] == "ST torch"}
    lines = [f"Sequence length ({count} texts of exactly N tokens, batch 32; ratio = ours / ST torch)",
             f"{'side':<9} {'tokens':>6} {'texts/s':>8} {'tokens/s':>8} {'MiB':>6} {'t/s ratio':>9} {'MiB ratio':>9}"]
    for r in sorted(rows, key=lambda r: (r["side"], r["tokens"])):
        p = peer[r["tokens"]]
        lines.append(f"{r['side']:<9} {r['tokens']:>6} {r['texts_per_s']:8.1f} {r['tokens_per_s']:8.0f} "
                     f"{r['rss_mib']:6.0f} {r['texts_per_s'] / p['texts_per_s']:8.2f}x "
                     f"{r['rss_mib'] / p['rss_mib']:8.2f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,1000,2000,4000", help="corpus sizes for both sides")
    parser.add_argument("--ours-sizes", default="10000,20000,40000", help="larger sizes, sentencekit only")
    parser.add_argument("--corpus-torch", action="store_true", help="embed-corpus --backend torch too")
    parser.add_argument("--lengths", default="64,128,256,512")
    parser.add_argument("--seq-texts", type=int, default=32)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-seq", action="store_true")
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--tables-from", help="print the tables of an earlier --json file, measuring nothing")
    args = parser.parse_args()

    if args.tables_from:
        report = json.loads(Path(args.tables_from).read_text())
        print("\n".join(print_corpus(report["corpus"]) + [""] + print_seq(report["seq"], args.seq_texts)))
        return
    from sentencekit.hub import resolve_model

    print(f"load: {os.getloadavg()}", flush=True)
    # PASSIVE: torch's OpenMP threads sleep instead of spinning on a loaded machine (both torch sides)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE"}
    work = Path(tempfile.mkdtemp(prefix="cost-growth-"))
    try:
        folder = work / "model"  # a private copy: the ONNX export lands beside it, not in site-packages
        shutil.copytree(resolve_model(MODEL).path, folder, ignore=shutil.ignore_patterns("onnx"))
        # export once, untimed, so no measured point pays for it
        subprocess.run([sys.executable, "-c", f"from sentencekit import SentenceTransformer as S; "
                        f"S({str(folder)!r}, backend='onnx').encode(['warm'])"], env=env, check=True)
        report: dict = {}
        lines: list[str] = []
        if not args.skip_corpus:
            ours_only = [int(s) for s in args.ours_sizes.split(",") if s]
            report["corpus"] = corpus_sweep(folder, work, [int(s) for s in args.sizes.split(",")], ours_only,
                                            args.corpus_torch, env)
            lines += print_corpus(report["corpus"]) + [""]
        if not args.skip_seq:
            report["seq"] = seq_sweep(folder, work, [int(s) for s in args.lengths.split(",")], args.seq_texts, env)
            lines += print_seq(report["seq"], args.seq_texts)
        print(f"\nload: {os.getloadavg()}\n" + "\n".join(lines))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
