"""Cross-encoder evaluators on a stand-in model with fixed pair scores (expected values worked out by hand
in the comments), plus a smoke test with the tiny random CrossEncoder."""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import pytest

from sentencekit.evaluation import (
    CrossEncoderClassificationEvaluator,
    CrossEncoderCorrelationEvaluator,
    CrossEncoderRerankingEvaluator,
    SequentialEvaluator,
)


class ScoreModel:
    """Stand-in CrossEncoder: ``predict`` looks each (query, document) pair up in a table (a number, or a
    row of logits for several labels) and records the pairs it was asked about."""

    def __init__(self, scores: dict[tuple[str, str], Any], num_labels: int = 1) -> None:
        self.scores, self.num_labels = scores, num_labels
        self.asked: list[list[tuple[str, str]]] = []

    def predict(self, sentences: list[tuple[str, str]], batch_size: int = 32, show_progress_bar: bool | None = None,
                convert_to_numpy: bool = True, **kwargs: Any) -> np.ndarray:
        pairs = [tuple(p) for p in sentences]
        self.asked.append(pairs)
        return np.array([self.scores[p] for p in pairs], dtype=np.float32)


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


PAIRS = [("q", f"d{i}") for i in range(6)]


def test_correlation_by_hand(tmp_path):
    model = ScoreModel(dict(zip(PAIRS[:4], [0.1, 0.4, 0.35, 0.8])))
    evaluator = CrossEncoderCorrelationEvaluator(PAIRS[:4], [1, 2, 3, 4], name="sts")
    results = evaluator(model, output_path=str(tmp_path))
    # predictions centred [-.3125, -.0125, -.0625, .3875] (mean .4125), gold centred [-1.5, -.5, .5, 1.5]
    #   products sum to 1.025; squares sum to .251875 and 5
    # ranks [1, 3, 2, 4] vs [1, 2, 3, 4]: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    assert results == pytest.approx({"sts_pearson": 1.025 / math.sqrt(0.251875 * 5), "sts_spearman": 0.8})
    assert evaluator.primary_metric == "sts_spearman" and evaluator.greater_is_better
    rows = read_csv(tmp_path / "CrossEncoderCorrelationEvaluator_sts_results.csv")
    assert rows[0] == ["epoch", "steps", "Pearson_Correlation", "Spearman_Correlation"]
    assert float(rows[1][3]) == pytest.approx(0.8)


def test_binary_classification_by_hand(tmp_path):
    model = ScoreModel(dict(zip(PAIRS, [0.9, 0.8, 0.6, 0.4, 0.2, 0.0])))
    evaluator = CrossEncoderClassificationEvaluator(PAIRS, [1, 0, 1, 1, 0, 0], name="dup")
    results = evaluator(model, output_path=str(tmp_path))
    # sweep: accuracy 4/6 3/6 4/6 5/6 4/6; F1 2/4 2/5 4/6 6/7 6/8; both best between .4 and .2
    # AP: precision at the positives (ranks 1, 3, 4)
    assert results == pytest.approx({
        "dup_accuracy": 5 / 6, "dup_accuracy_threshold": 0.3, "dup_f1": 6 / 7, "dup_f1_threshold": 0.3,
        "dup_precision": 3 / 4, "dup_recall": 1.0, "dup_average_precision": (1 + 2 / 3 + 3 / 4) / 3}, abs=1e-6)
    assert evaluator.primary_metric == "dup_average_precision"
    rows = read_csv(tmp_path / "CrossEncoderClassificationEvaluator_dup_results.csv")
    assert rows[0] == ["epoch", "steps", "Accuracy", "Accuracy_Threshold", "F1", "F1_Threshold", "Precision",
                       "Recall", "Average_Precision"]


def test_multiclass_classification_by_hand(tmp_path):
    # argmax of the logits: classes 0 2 2 2 1 1 against labels 0 1 2 2 2 0
    logits = [[3, 1, 0], [0, 1, 2], [0, 0, 5], [1, 0, 2], [0, 4, 1], [0, 2, 1]]
    model = ScoreModel(dict(zip(PAIRS, logits)), num_labels=3)
    evaluator = CrossEncoderClassificationEvaluator(PAIRS, [0, 1, 2, 2, 2, 0], name="nli")
    results = evaluator(model, output_path=str(tmp_path))
    # class 0: tp 1 fn 1 -> F1 2/3 (support 2); class 1: tp 0 fp 2 fn 1 -> 0 (support 1);
    # class 2: tp 2 fp 1 fn 1 -> 2/3 (support 3); micro: tp 3 fp 3 fn 3 -> 1/2 = accuracy
    assert results == pytest.approx({"nli_accuracy": 0.5, "nli_f1_macro": (2 / 3 + 0 + 2 / 3) / 3,
                                     "nli_f1_micro": 0.5, "nli_f1_weighted": (2 / 3 * 2 + 0 + 2 / 3 * 3) / 6})
    assert evaluator.primary_metric == "nli_f1_macro"
    assert read_csv(tmp_path / "CrossEncoderClassificationEvaluator_nli_results.csv")[0] == [
        "epoch", "steps", "Accuracy", "Macro_F1", "Micro_F1", "Weighted_F1"]


# -- reranking ---------------------------------------------------------------------------------------------
RERANK_SCORES = {
    ("q1", "p1"): 0.5, ("q1", "n1"): 0.9, ("q1", "n2"): 0.1,
    ("q2", "a"): 0.3, ("q2", "b"): 0.8, ("q2", "x"): 0.6, ("q2", "y"): 0.1,
    ("q3", "z"): 0.7, ("q3", "x"): 0.6, ("q3", "y"): 0.1,
}
IDCG2 = 1 + 1 / math.log2(3)  # ideal DCG of two relevant documents


def test_reranking_with_negatives_by_hand(tmp_path):
    model = ScoreModel(RERANK_SCORES)
    evaluator = CrossEncoderRerankingEvaluator([{"query": "q1", "positive": ["p1"], "negative": ["n1", "n2"]}],
                                               name="rr")
    # reranked n1 p1 n2 -> 0 1 0: MRR 1/2, NDCG 1/log2(3), AP 1/2; no base metrics without documents
    assert evaluator(model, output_path=str(tmp_path)) == pytest.approx(
        {"rr_map": 0.5, "rr_mrr@10": 0.5, "rr_ndcg@10": 1 / math.log2(3)})
    assert evaluator.primary_metric == "rr_ndcg@10"
    assert read_csv(tmp_path / "CrossEncoderRerankingEvaluator_rr_results_@10.csv")[0] == [
        "epoch", "steps", "MAP", "MRR@10", "NDCG@10"]


DOC_SAMPLES = [
    {"query": "q2", "positive": ["a", "b"], "documents": ["x", "a", "y"]},  # b is missing from the list
    {"query": "q3", "positive": ["z"], "documents": ["x", "y"]},            # no positive in the list
]
# Base (given order, missing positives last): q2 x a y b -> 0 1 0 1: MRR 1/2,
#   NDCG (1/log2(3) + 1/log2(5)) / IDCG2, AP (1/2 + 2/4) / 2; q3 has no positive in the list: 0.
BASE = {"base_map": (0.5 + 0) / 2, "base_mrr@10": (0.5 + 0) / 2,
        "base_ndcg@10": ((1 / math.log2(3) + 1 / math.log2(5)) / IDCG2 + 0) / 2}


def test_reranking_documents_always_rerank_positives_by_hand():
    model = ScoreModel(RERANK_SCORES)
    results = CrossEncoderRerankingEvaluator(DOC_SAMPLES)(model)
    # q2 candidates a b x y scored .3 .8 .6 .1 -> b x a y -> 1 0 1 0: MRR 1, NDCG (1 + 1/log2(4)) / IDCG2,
    #   AP (1 + 2/3) / 2; q3 candidates z x y -> 1 0 0: all 1
    assert results == pytest.approx({"map": ((1 + 2 / 3) / 2 + 1) / 2, "mrr@10": 1.0,
                                     "ndcg@10": ((1 + 1 / math.log2(4)) / IDCG2 + 1) / 2, **BASE})
    assert model.asked[0] == [("q2", "a"), ("q2", "b"), ("q2", "x"), ("q2", "y")]


def test_reranking_documents_only_by_hand():
    model = ScoreModel(RERANK_SCORES)
    evaluator = CrossEncoderRerankingEvaluator(DOC_SAMPLES, always_rerank_positives=False, at_k=5)
    # q2: x a y reranked .6 .3 .1 (same order), b missing -> last: 0 1 0 1 as the base; q3: nothing to find: 0
    assert evaluator(model) == pytest.approx({
        "map": BASE["base_map"], "mrr@5": BASE["base_mrr@10"], "ndcg@5": BASE["base_ndcg@10"],
        "base_map": BASE["base_map"], "base_mrr@5": BASE["base_mrr@10"], "base_ndcg@5": BASE["base_ndcg@10"]})
    assert model.asked == [[("q2", "x"), ("q2", "a"), ("q2", "y")]]  # q3 is not even scored
    assert evaluator.get_config_dict() == {"at_k": 5, "always_rerank_positives": False}
    with pytest.raises(ValueError, match="exactly one"):
        CrossEncoderRerankingEvaluator([{"query": "q", "positive": ["a"], "negative": ["b"], "documents": ["c"]}])


# -- the tiny random CrossEncoder --------------------------------------------------------------------------
def test_tiny_cross_encoder_smoke(tiny_ce_dir, tmp_path):
    from sentencekit import CrossEncoder

    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    pairs = [("how do i get a refund", "refund policy"), ("how do i get a refund", "the cat sat"),
             ("reset my password", "password reset help"), ("reset my password", "weather in paris")]
    evaluators = [
        CrossEncoderCorrelationEvaluator(pairs, [0.9, 0.1, 0.8, 0.0], name="corr"),
        CrossEncoderClassificationEvaluator(pairs, [1, 0, 1, 0], name="cls"),
        CrossEncoderRerankingEvaluator([{"query": "how do i get a refund", "positive": ["refund policy"],
                                         "documents": ["the cat sat", "refund policy", "hello world"]}], name="rr"),
    ]
    results = SequentialEvaluator(evaluators)(model, output_path=str(tmp_path))
    scores = model.predict(pairs)
    assert results["corr_spearman"] == pytest.approx(
        np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort([0.9, 0.1, 0.8, 0.0])))[0, 1])
    assert all(0.0 <= results[k] <= 1.0 for k in ("cls_average_precision", "rr_ndcg@10", "rr_base_ndcg@10"))
    assert results["rr_base_mrr@10"] == 0.5  # the positive is second in the given list
    assert len(list(tmp_path.iterdir())) == 3
