"""Long contexts: texts/s and peak memory on ~8k-token texts (and a mixed 512 / 2k / 8k set) for a small random
decoder embedder, sentencekit (torch, and ONNX when the decoder exports) side by side with sentence-transformers
6.2 (the peer venv), ratios in one run.

The model: a random Qwen3 (hidden 256, 2 layers, 4 heads / 2 KV heads, 8,192 positions; random weights: this
measures speed and memory, not quality) with Qwen's real tokenizer appending ``<|endoftext|>``
(tests/decoder_folders.py), saved by sentencekit as a sentence-transformers folder (modules.json: Transformer +
Pooling lasttoken), so both libraries load the same folder. Texts are stitched from the bundled sample corpus
to a token count with the model's tokenizer (a few tokens of spread, so batches pad).

Each (library, backend, text set) runs in its own fresh process: it loads the model, warms up on one short
text, then times ``encode(texts, batch_size=--batch-size)`` ``--repeats`` times (best kept) and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process's resident high-water mark, loading included;
tracemalloc misses torch's allocations) as "peak", and as "+encode" what encoding added over the loaded,
warmed-up model's RSS (the high-water mark is reset after warm-up through ``/proc/self/clear_refs`` and read
back as ``VmHWM``; where that reset is refused, the process peak stands in). sentencekit bounds a batch of
long texts by its token / attention budget (``sentencekit.pipeline.batching.resolve_batching``: one 8k text a
batch); sentence-transformers runs ``batch_size`` texts a batch. "max|diff|": largest difference of our
embeddings from the peer's (same folder, same texts).

    nice /work/main/.venv/bin/python benchmarks/long_context.py \
        --peer-python /work/main/.venv-peer/bin/python        # both sides; about 4 minutes on 2 cores

Measured (2026-12-06, 2 CPU cores shared with other jobs (loaded machine), torch 2.13 CPU, transformers 5.25,
onnxruntime 1.32 CPU, sentence-transformers 6.2.0; defaults: --n-long 4 --batch-size 32 --repeats 1):

    set    library                backend  texts/s  tokens/s  peak MiB +encode MiB speed/peer +enc/peer max|diff|
    8k     4 texts, 7901-8068 tokens, 31982 in all
           sentencekit            torch       0.57      4578       707          90      2.22x     0.06x   1.3e-05
           sentencekit            onnx        1.50     12009       543         117      5.81x     0.07x   1.3e-05
           sentence-transformers  torch       0.26      2066      2357        1613
    mixed  8 texts, 512-7985 tokens, 16177 in all
           sentencekit            torch       2.03      4097       678          61      5.58x     0.02x   4.1e-05
           sentencekit            onnx        4.62      9348       543         110     12.73x     0.04x   4.3e-05
           sentence-transformers  torch       0.36       734      3815        3070

The peer pads all four 8k texts into one batch (torch's SDPA with a padding mask: 1.6 GB over the loaded model);
sentencekit runs them one at a time (~100 MB). The ONNX graph runs each decoder layer's attention as one ONNX
Runtime ``GroupQueryAttention`` node (``sentencekit.engines.onnx_attention``), which never holds an n x n score
matrix. Before that (plain MatMul + Softmax: 4 heads x 8k^2 floats per layer, plus an [n, n] causal mask) the
same run gave ONNX 3,039 MiB +encode at 8k (0.41-0.48 texts/s) and 2,980 MiB on the mixed set (2.6-2.8 texts/s),
in alternating before / after runs of ``--peer-python ''`` on this machine: now 116 MiB (0.95-1.39 texts/s) and
110 MiB (5.6-6.7 texts/s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent

#: runs in a fresh interpreter: load, warm up, time, report the RSS high-water mark (KiB on Linux)
WORKER = r"""
import json, os, resource, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
library, backend, folder, texts_file, batch_size, repeats = sys.argv[1:7]
texts = json.loads(open(texts_file).read())
if library == "sentencekit":
    from sentencekit import SentenceTransformer
else:
    from sentence_transformers import SentenceTransformer
model = SentenceTransformer(folder, device="cpu", backend=backend)
model.encode(["warm up"])
def status(key):  # /proc/self/status values, KiB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))
loaded = status("VmRSS")
try:  # reset the RSS high-water mark (Linux: clear_refs 5), so VmHWM then tells what encoding reached
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
best = float("inf")
for _ in range(int(repeats)):
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=int(batch_size))
    best = min(best, time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
encode_peak = status("VmHWM") if reset else peak
import numpy as np
np.save(texts_file + f".{library}.{backend}.npy", np.asarray(emb, dtype=np.float32))
print(json.dumps({"seconds": best, "loaded_kib": loaded, "peak_kib": peak, "encode_peak_kib": encode_peak}))
"""


def build_model(folder: Path) -> Path:
    """The random Qwen3 decoder embedder (module docstring), built once per folder."""
    if (folder / "modules.json").is_file():
        return folder
    sys.path.insert(0, str(ROOT))
    from sentencekit import SentenceTransformer
    from sentencekit.modules import Pooling, Transformer
    from tests.decoder_folders import build_tiny_decoder

    hf = build_tiny_decoder(folder.parent / f"{folder.name}-hf", "qwen3", append_eos=True, hidden_size=256,
                            intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=64, max_position_embeddings=8192)
    transformer = Transformer(str(hf))
    SentenceTransformer(modules=[transformer, Pooling(256, "lasttoken")], device="cpu").save(folder)
    return folder


def make_texts(tokenizer, counts: list[int], seed: int = 0) -> list[str]:
    """Texts of about ``counts`` tokens each (without the appended EOS), stitched from the sample corpus."""
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    rng = random.Random(seed)
    docs = [d.text for d in load_corpus(SAMPLE_CORPUS)]
    texts = []
    for target in counts:
        parts, ids = [], 0
        while ids < target + 64:  # a margin: stitched parts tokenize a little shorter than apart
            text = rng.choice(docs)
            parts.append(text)
            ids += len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
        whole = " ".join(parts)
        # cut to ``target`` tokens minus 2 (room for EOS): a text that fits the 8k window whole
        cut = tokenizer(whole, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        texts.append(whole[: cut[min(target, len(cut)) - 2][1]])
    return texts


def run_side(python: str, library: str, backend: str, folder: Path, texts_file: Path, batch_size: int,
             repeats: int, env: dict[str, str]) -> dict:
    proc = subprocess.run([python, "-c", WORKER, library, backend, str(folder), str(texts_file), str(batch_size),
                           str(repeats)], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", default="/work/main/.venv-peer/bin/python",
                        help="interpreter with sentence-transformers 6.2 ('' to skip the peer)")
    parser.add_argument("--n-long", type=int, default=4, help="texts of ~8k tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sentencekit-long-context"))
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folder = build_model(work / "qwen3-256-st")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    spread = [0, -40, -120, -200, -260, -310, -350, -380]  # a few tokens apart: batches pad
    sets = {"8k": [8192 + spread[i % len(spread)] for i in range(args.n_long)],
            "mixed": [512, 512, 512, 512, 2048, 2048, 2048, 8192 - 100]}
    files = {}
    for name, counts in sets.items():
        texts = make_texts(tok, counts)
        files[name] = work / f"texts-{name}.json"
        files[name].write_text(json.dumps(texts))
        sets[name] = [len(ids) for ids in tok(texts)["input_ids"]]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    sides = [("sentencekit", "torch", sys.executable)]
    if not args.no_onnx:
        sides.append(("sentencekit", "onnx", sys.executable))
    if args.peer_python:
        sides.append(("sentence-transformers", "torch", args.peer_python))
    peer_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    results: dict[tuple[str, str, str], dict] = {}
    for name, file in files.items():
        for library, backend, python in sides:
            results[(library, backend, name)] = run_side(python, library, backend, folder, file, args.batch_size,
                                                         args.repeats, env if library == "sentencekit" else peer_env)
    import numpy as np

    print(f"random Qwen3 (hidden 256, 2 layers, 8192 positions), lasttoken; batch_size={args.batch_size}; "
          f"best of {args.repeats}; {os.cpu_count()} CPUs")
    peer = ("sentence-transformers", "torch")
    header = f"{'set':<6} {'library':<22} {'backend':<7} {'texts/s':>8} {'tokens/s':>9} {'peak MiB':>9} " \
             f"{'+encode MiB':>11} {'speed/peer':>10} {'+enc/peer':>9} {'max|diff|':>9}"
    print(header)
    for name, lengths in sets.items():
        base = results.get((*peer, name), {})
        base_emb = np.load(f"{files[name]}.sentence-transformers.torch.npy") if "seconds" in base else None
        print(f"{name:<6} {len(lengths)} texts, {min(lengths)}-{max(lengths)} tokens, {sum(lengths)} in all")
        for library, backend, _ in sides:
            r = results[(library, backend, name)]
            if "error" in r:
                print(f"{'':<6} {library:<22} {backend:<7} failed: {r['error']}")
                continue
            added = (r["encode_peak_kib"] - r["loaded_kib"]) / 1024
            line = (f"{'':<6} {library:<22} {backend:<7} {len(lengths) / r['seconds']:8.2f} "
                    f"{sum(lengths) / r['seconds']:9.0f} {r['peak_kib'] / 1024:9.0f} {added:11.0f}")
            if base_emb is not None and (library, backend) != peer:
                base_added = (base["encode_peak_kib"] - base["loaded_kib"]) / 1024
                emb = np.load(f"{files[name]}.sentencekit.{backend}.npy")
                line += (f" {base['seconds'] / r['seconds']:9.2f}x {added / max(base_added, 1):8.2f}x "
                         f"{float(np.abs(emb - base_emb).max()):9.1e}")
            print(line)


if __name__ == "__main__":
    main()
