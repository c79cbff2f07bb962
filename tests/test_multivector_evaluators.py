"""The multi-vector evaluators on a tiny random ColBERT model: what they score (the model's MaxSim, MeanMaxSim,
chunked or not) checked by hand against ``model.similarity``, the metric names and primary metrics of the dense
evaluators they reuse, NanoBEIR on a local folder, the distillation evaluator's KL and Spearman by hand, and
the errors (XTR, ``truncate_dim``, margins)."""

from __future__ import annotations

import csv
import math
from functools import partial

import numpy as np
import pytest
import torch

from sentencekit import MultiVectorEncoder
from sentencekit.evaluation import (
    InformationRetrievalEvaluator,
    MultiVectorDistillationEvaluator,
    MultiVectorInformationRetrievalEvaluator,
    MultiVectorNanoBEIREvaluator,
    MultiVectorRerankingEvaluator,
    MultiVectorTripletEvaluator,
)
from sentencekit.evaluation.metrics import spearman
from sentencekit.late_interaction_scoring import mean_colbert_scores_pairwise
from sentencekit.late_interaction_tensors import maxsim
from sentencekit.late_interaction_xtr import XTRScores, xtr_scores
from tests.test_nano_beir import SUBSETS, write_nano_beir

pytestmark = pytest.mark.unit

QUERIES = {"q1": "how do i get a refund", "q2": "reset my password", "q3": "the weather in paris"}
CORPUS = {"d1": "refund return policy money back", "d2": "password reset login", "d3": "paris weather mild today",
          "d4": "the cat sat on the mat", "d5": "stock prices fell sharply"}
RELEVANT = {"q1": {"d1"}, "q2": {"d2", "d4"}, "q3": {"d3"}}


@pytest.fixture(scope="module")
def colbert(tiny_mv_dir):
    return MultiVectorEncoder(str(tiny_mv_dir), device="cpu")


def ranks_by_hand(model, name="maxsim"):
    """Each query's first relevant document's rank (1-based) under the model's similarity ``name``."""
    model.similarity_fn_name = name
    scores = model.similarity(model.encode_query(list(QUERIES.values())),
                              model.encode_document(list(CORPUS.values())))
    ids = list(CORPUS)
    ranks = []
    for row, qid in zip(scores, QUERIES):
        order = [ids[j] for j in torch.argsort(row, descending=True, stable=True).tolist()]
        ranks.append(next(i for i, doc in enumerate(order, 1) if doc in RELEVANT[qid]))
    return ranks


# -- retrieval ------------------------------------------------------------------------------------------------
def test_retrieval_scores_with_the_models_maxsim(colbert, tmp_path):
    ranks = ranks_by_hand(colbert)
    evaluator = MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, name="toy")
    assert evaluator.primary_metric == "toy_maxsim_ndcg@10" and evaluator.corpus_chunk_size == 5000
    results = evaluator(colbert, output_path=str(tmp_path))
    assert results["toy_maxsim_mrr@10"] == pytest.approx(np.mean([1 / r for r in ranks]))
    assert results["toy_maxsim_accuracy@1"] == pytest.approx(np.mean([r == 1 for r in ranks]))
    assert len(results) == 15 and all(key.startswith("toy_maxsim_") for key in results)
    with open(tmp_path / "Information-Retrieval_evaluation_toy_results.csv", encoding="utf-8") as f:
        header, row = list(csv.reader(f))
    assert header[2] == "maxsim-Accuracy@1" and len(header) == len(row)
    # the same metrics from the dense evaluator given the same scorer: its metric code, unchanged
    dense = InformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, name="toy", score_functions={"maxsim": maxsim})
    dense.embed_inputs = evaluator.embed_inputs  # multi-vector rows instead of stacked tensors
    assert dense(colbert) == pytest.approx(results)


def test_retrieval_chunks_and_meanmaxsim(colbert):
    plain = MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT)(colbert)
    chunked = MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, corpus_chunk_size=2,
                                                       chunk_elements=300)(colbert)
    assert chunked == pytest.approx(plain)
    try:
        ranks = ranks_by_hand(colbert, "meanmaxsim")
        evaluator = MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT)
        results = evaluator(colbert)
    finally:
        colbert.similarity_fn_name = "maxsim"
    assert evaluator.primary_metric == "meanmaxsim_ndcg@10"
    assert results["meanmaxsim_mrr@10"] == pytest.approx(np.mean([1 / r for r in ranks]))
    custom = MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT,
                                                      score_functions={"mine": partial(maxsim, chunk_elements=100)})
    assert custom(colbert)["mine_mrr@10"] == pytest.approx(plain["maxsim_mrr@10"])


def test_retrieval_refuses_xtr_truncation_and_ignored_budgets():
    for scorer in (XTRScores(8), xtr_scores, partial(xtr_scores, top_k=4)):
        with pytest.raises(ValueError, match="XTR"):
            MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, score_functions={"x": scorer})
    with pytest.raises(ValueError, match="chunk_elements"):
        MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, chunk_elements=10,
                                                 score_functions={"maxsim": maxsim})
    with pytest.raises(ValueError, match="truncate_dim"):
        MultiVectorInformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, truncate_dim=8)


def test_nano_beir_subsets_are_retrieval_evaluators(colbert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    folder = write_nano_beir(tmp_path / "NanoBEIR-local")
    evaluator = MultiVectorNanoBEIREvaluator(dataset_names=["scifact", "nfcorpus"], dataset_id=str(folder),
                                             corpus_chunk_size=2, chunk_elements=500)
    assert all(isinstance(e, MultiVectorInformationRetrievalEvaluator) and e.corpus_chunk_size == 2
               and e.chunk_elements == 500 for e in evaluator.evaluators)
    results = evaluator(colbert)
    assert evaluator.primary_metric == "NanoBEIR_mean_maxsim_ndcg@10"
    data = SUBSETS["NanoSciFact"]
    relevant: dict = {}
    for row in data["qrels"]:
        relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    alone = MultiVectorInformationRetrievalEvaluator({r["_id"]: r["text"] for r in data["queries"]},
                                                     {r["_id"]: r["text"] for r in data["corpus"] if r["text"]},
                                                     relevant, name="NanoSciFact")(colbert)
    assert {k: v for k, v in results.items() if k.startswith("NanoSciFact_")} == pytest.approx(alone)
    mean = (results["NanoSciFact_maxsim_mrr@10"] + results["NanoNFCorpus_maxsim_mrr@10"]) / 2
    assert results["NanoBEIR_mean_maxsim_mrr@10"] == pytest.approx(mean)
    with pytest.raises(ValueError, match="truncate_dim"):
        MultiVectorNanoBEIREvaluator(dataset_names=["scifact"], dataset_id=str(folder), truncate_dim=8)


# -- triplets and reranking -----------------------------------------------------------------------------------
def test_triplet_accuracy_by_hand_and_margins(colbert):
    anchors = list(QUERIES.values())
    positives, negatives = ["refund money back", "password login", "paris mild"], list(CORPUS.values())[2:]
    q, p, n = colbert.encode_query(anchors), colbert.encode_document(positives), colbert.encode_document(negatives)
    margin_of = colbert.similarity_pairwise(q, p) - colbert.similarity_pairwise(q, n)
    evaluator = MultiVectorTripletEvaluator(anchors, positives, negatives, name="toy")
    assert evaluator(colbert) == {"toy_maxsim_accuracy": pytest.approx(float((margin_of > 0).float().mean()))}
    assert evaluator.primary_metric == "toy_maxsim_accuracy"
    cut = float(margin_of.median())
    both = MultiVectorTripletEvaluator(anchors, positives, negatives, similarity_fn_names=["maxsim", "meanmaxsim"],
                                       margin={"maxsim": cut})
    results = both(colbert)
    assert results["maxsim_accuracy"] == pytest.approx(float((margin_of > cut).float().mean()))
    assert set(results) == {"maxsim_accuracy", "meanmaxsim_accuracy", "max_accuracy"}
    assert both.margin == {"maxsim": cut, "meanmaxsim": 0.0}
    with pytest.raises(ValueError, match="maxsim"):
        MultiVectorTripletEvaluator(anchors, positives, negatives, margin={"cosine": 0.5})
    with pytest.raises(ValueError, match="truncate_dim"):
        MultiVectorTripletEvaluator(anchors, positives, negatives, truncate_dim=4)


def test_reranking_by_hand(colbert):
    samples = [{"query": QUERIES[q], "positive": [CORPUS[d] for d in sorted(RELEVANT[q])],
                "negative": [CORPUS[d] for d in CORPUS if d not in RELEVANT[q]]} for q in QUERIES]
    ranks = []
    for sample in samples:
        scores = colbert.similarity(colbert.encode_query([sample["query"]]),
                                    colbert.encode_document(sample["positive"] + sample["negative"]))[0]
        order = torch.argsort(scores, descending=True, stable=True).tolist()
        ranks.append(next(i for i, c in enumerate(order, 1) if c < len(sample["positive"])))
    evaluator = MultiVectorRerankingEvaluator(samples, at_k=3, name="toy")
    results = evaluator(colbert)
    assert evaluator.primary_metric == "toy_ndcg@3" and evaluator.batch_size == 16
    assert results["toy_mrr@3"] == pytest.approx(np.mean([1 / r if r <= 3 else 0 for r in ranks]))
    one_by_one = MultiVectorRerankingEvaluator(samples, at_k=3, name="toy", use_batched_encoding=False)(colbert)
    assert one_by_one == pytest.approx(results)
    # a scorer of one's own: a query's scores divided by its token count rank the candidates alike
    mean = MultiVectorRerankingEvaluator(samples, at_k=3, name="toy",
                                         similarity_fct=partial(maxsim, length_normalize=True))(colbert)
    assert mean == pytest.approx(results)


# -- distillation ---------------------------------------------------------------------------------------------
def test_distillation_by_hand(colbert):
    queries = list(QUERIES.values())
    documents = [["refund policy", "cat mat", "stock"], ["password reset", "paris", "login"],
                 ["paris weather", "cat", "refund"]]
    teacher = [[5.0, 1.0, 0.0], [3.0, 0.5, 2.0], [4.0, 4.0, 1.0]]
    q = colbert.encode_query(queries)
    student = [colbert.similarity_pairwise(q, colbert.encode_document([row[j] for row in documents])).tolist()
               for j in range(3)]
    student = [[student[j][i] for j in range(3)] for i in range(3)]
    t_s, t_t = 2.0, 1.0
    kl = 0.0
    for s_row, t_row in zip(student, teacher):
        p = [math.exp(t / t_t) for t in t_row]
        p = [x / sum(p) for x in p]
        log_q = [s / t_s - math.log(sum(math.exp(x / t_s) for x in s_row)) for s in s_row]
        kl += sum(pi * (math.log(pi) - lq) for pi, lq in zip(p, log_q))
    evaluator = MultiVectorDistillationEvaluator(queries, documents, teacher, student_temperature=t_s, name="kd")
    results = evaluator(colbert)
    assert results["kd_kl_divergence"] == pytest.approx(kl / 3 * t_s**2, rel=1e-5)
    assert results["kd_spearman"] == pytest.approx(np.mean([spearman(t, s) for t, s in zip(teacher, student)]))
    assert evaluator.primary_metric == "kd_spearman" and evaluator.greater_is_better
    assert evaluator.get_config_dict() == {"student_temperature": 2.0}
    # one document per query: one distribution and one correlation over all pairs
    flat = MultiVectorDistillationEvaluator(queries, [row[0] for row in documents], [row[0] for row in teacher],
                                            similarity_fct=mean_colbert_scores_pairwise)(colbert)
    flat_student = mean_colbert_scores_pairwise(q, colbert.encode_document([row[0] for row in documents]))
    assert flat["spearman"] == pytest.approx(spearman([row[0] for row in teacher], flat_student))


def test_distillation_errors():
    with pytest.raises(ValueError, match="same length"):
        MultiVectorDistillationEvaluator(["a", "b"], ["x"], [1.0])
    with pytest.raises(ValueError, match="same number of candidate"):
        MultiVectorDistillationEvaluator(["a", "b"], [["x", "y"], ["z"]], [[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        MultiVectorDistillationEvaluator(["a", "b"], [["x", "y"], ["z", "w"]], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="1-D"):
        MultiVectorDistillationEvaluator(["a"], ["x"], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="temperature"):
        MultiVectorDistillationEvaluator(["a"], ["x"], [1.0], temperature=-1.0)


def test_sentence_transformers_module_path():
    from sentencekit.multi_vector_encoder import evaluation

    assert evaluation.MultiVectorTripletEvaluator is MultiVectorTripletEvaluator
    assert sorted(evaluation.__all__) == sorted(
        ["MultiVectorInformationRetrievalEvaluator", "MultiVectorNanoBEIREvaluator", "MultiVectorTripletEvaluator",
         "MultiVectorDistillationEvaluator", "MultiVectorRerankingEvaluator"])
