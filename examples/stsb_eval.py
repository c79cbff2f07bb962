"""STS Benchmark (test split) Spearman correlation of cosine similarity, for any model.

    .venv/bin/python examples/stsb_eval.py [--model sentence-transformers/all-MiniLM-L6-v2] [--split test]

all-MiniLM-L6-v2 gives 82.03 on the test split (sentence-transformers reports the same).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def spearman(x, y) -> float:
    """Spearman rank correlation with average ranks for ties (no SciPy needed)."""
    import numpy as np

    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return (sums / counts)[inverse]

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from sentencekit import SentenceTransformer
    from sentencekit.datasets import load_stsb

    model = SentenceTransformer(args.model)
    pairs = load_stsb(args.split)
    a = model.encode([p.sentence1 for p in pairs], batch_size=args.batch_size)
    b = model.encode([p.sentence2 for p in pairs], batch_size=args.batch_size)
    cosine = model.similarity_pairwise(a, b).numpy()
    print(f"STS-B {args.split} ({len(pairs)} pairs), {args.model}: "
          f"Spearman (cosine) = {100 * spearman(cosine, [p.score for p in pairs]):.2f}")


if __name__ == "__main__":
    main()
