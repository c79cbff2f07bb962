"""Sparse evaluators on a bag-of-words SparseEncoder (a lone ``SparseStaticEmbedding`` with weight 1: a text's
embedding is 1 on each distinct word it contains), so every score is a count of shared words and every
metric can be worked out by hand; and ReciprocalRankFusionEvaluator on hand-made rankings."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from sentencekit import SparseEncoder
from sentencekit.evaluation import (
    ReciprocalRankFusionEvaluator,
    SparseBinaryClassificationEvaluator,
    SparseEmbeddingSimilarityEvaluator,
    SparseInformationRetrievalEvaluator,
    SparseMSEEvaluator,
    SparseRerankingEvaluator,
    SparseTranslationEvaluator,
    SparseTripletEvaluator,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bow(tiny_mlm_dir):
    from transformers import AutoTokenizer

    from sentencekit.modules import SparseStaticEmbedding

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mlm_dir))
    return SparseEncoder(modules=[SparseStaticEmbedding(tokenizer)], device="cpu")


def test_bag_of_words_model_is_what_the_hand_computations_assume(bow):
    emb = bow.encode(["refund policy", "refund policy please"])
    assert bow.similarity(emb, emb)[0].tolist() == [2.0, 2.0] and bow.sparsity(emb)["active_dims"] == 2.5


def test_information_retrieval_metrics_sparsity_and_avg_flops(bow, tmp_path):
    evaluator = SparseInformationRetrievalEvaluator(
        queries={"q1": "refund policy", "q2": "password reset"},
        corpus={"d1": "refund policy please", "d2": "refund order", "d3": "password help", "d4": "reset my password"},
        relevant_docs={"q1": {"d2"}, "q2": {"d4"}}, name="toy")
    results = evaluator(bow, output_path=str(tmp_path))
    dim = bow.get_embedding_dimension()
    # q1 ranks d1 (2 shared words) above its relevant d2 (1); q2 ranks d4 (2) first
    assert results["toy_dot_mrr@10"] == pytest.approx(0.75)
    assert results["toy_dot_accuracy@1"] == pytest.approx(0.5)
    assert results["toy_dot_ndcg@10"] == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert results["toy_query_active_dims"] == 2.0 and results["toy_corpus_active_dims"] == 2.5
    assert results["toy_query_sparsity_ratio"] == pytest.approx(1 - 2 / dim)
    assert results["toy_corpus_sparsity_ratio"] == pytest.approx(1 - 2.5 / dim)
    # mean query counts: refund, policy, password, reset 1/2 each; mean corpus counts: refund 2/4, policy 1/4,
    # password 2/4, reset 1/4 -> .25 + .125 + .25 + .125
    assert results["toy_avg_flops"] == pytest.approx(0.75)
    assert evaluator.primary_metric == "toy_dot_ndcg@10"
    with open(tmp_path / evaluator.csv_file, newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header[-5:] == ["query_active_dims", "query_sparsity_ratio", "corpus_active_dims",
                           "corpus_sparsity_ratio", "avg_flops"]
    assert len(header) == len(row) and float(row[-1]) == pytest.approx(0.75)


def test_max_active_dims_caps_what_the_evaluator_embeds(bow):
    evaluator = SparseInformationRetrievalEvaluator(
        queries={"q1": "refund policy"}, corpus={"d1": "refund policy please", "d2": "cat"},
        relevant_docs={"q1": {"d1"}}, max_active_dims=1)
    results = evaluator(bow)
    assert results["query_active_dims"] == 1.0 and results["corpus_active_dims"] == 1.0
    assert evaluator.get_config_dict()["max_active_dims"] == 1
    with pytest.raises(ValueError, match="max_active_dims"):
        SparseInformationRetrievalEvaluator({"q": "a"}, {"d": "a"}, {"q": {"d"}}, truncate_dim=8)


def test_embedding_similarity(bow):
    evaluator = SparseEmbeddingSimilarityEvaluator(["refund policy", "cat dog", "hello world"],
                                                   ["refund policy please", "cat", "paris"], [0.9, 0.5, 0.1])
    results = evaluator(bow)
    dots = [2.0, 1.0, 0.0]
    assert results["pearson_dot"] == pytest.approx(float(np.corrcoef(dots, [0.9, 0.5, 0.1])[0, 1]))
    assert results["spearman_dot"] == pytest.approx(1.0)
    assert results["active_dims"] == pytest.approx(11 / 6)  # 2 + 2 + 2 and 3 + 1 + 1 words over 6 texts
    assert evaluator.primary_metric == "spearman_dot"
    with pytest.raises(ValueError, match="precision"):
        SparseEmbeddingSimilarityEvaluator(["a"], ["b"], [1.0], precision="int8")


def test_triplet_reports_each_column(bow):
    evaluator = SparseTripletEvaluator(["refund policy", "cat dog"], ["refund policy please", "cat"],
                                       ["refund order", "cat dog today"], name="t")
    results = evaluator(bow)
    assert results["t_dot_accuracy"] == pytest.approx(0.5)  # 2 > 1, then 1 < 2
    assert results["t_anchor_active_dims"] == 2.0
    assert results["t_positive_active_dims"] == 2.0  # 3 and 1 words
    assert results["t_negative_active_dims"] == 2.5  # 2 and 3 words


def test_binary_classification(bow):
    evaluator = SparseBinaryClassificationEvaluator(["refund policy", "cat dog", "hello world"],
                                                    ["refund policy please", "cat", "paris"], [1, 1, 0])
    results = evaluator(bow)
    assert results["dot_accuracy"] == 1.0 and results["dot_ap"] == 1.0
    # each distinct sentence is embedded once, in one call: 2 + 2 + 2 + 3 + 1 + 1 words over 6 texts
    assert results["active_dims"] == pytest.approx(11 / 6)


def test_reranking(bow):
    evaluator = SparseRerankingEvaluator([{"query": "refund policy", "positive": ["refund order"],
                                           "negative": ["refund policy please", "cat"]}])
    results = evaluator(bow)
    assert results["mrr@10"] == pytest.approx(0.5) and results["map"] == pytest.approx(0.5)
    assert results["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert results["query_active_dims"] == 2.0 and results["corpus_active_dims"] == 2.0  # 2, 3 and 1 words


def test_translation_and_mse(bow):
    evaluator = SparseTranslationEvaluator(["refund policy", "cat dog"], ["refund policy please", "cat dog today"])
    results = evaluator(bow)
    assert results["mean_accuracy"] == 1.0 and results["active_dims"] == pytest.approx(10 / 4)
    mse = SparseMSEEvaluator(["refund policy", "cat dog"], ["refund policy", "cat dog"], teacher_model=bow)
    results = mse(bow)
    assert results["negative_mse"] == 0.0 and results["active_dims"] == 2.0


def test_reciprocal_rank_fusion_by_hand(tmp_path):
    dense = [{"query_id": 1, "query": "q", "positive": ["b"], "documents": ["a", "b", "c"]},
             {"query_id": 2, "query": "r", "positive": ["x", "z"], "documents": ["y", "x", "w"]}]
    sparse = [{"query_id": 1, "query": "q", "positive": ["b"], "documents": ["b", "d", "a"]},
              {"query_id": 2, "query": "r", "positive": ["x", "z"], "documents": ["w", "v", "u"]}]
    evaluator = ReciprocalRankFusionEvaluator(dense, sparse, name="rrf", write_predictions=True)
    results = evaluator(output_path=str(tmp_path))
    # query 1: dense ranks b 2nd, sparse 1st; fused b = 1/61 + 1/60 beats a = 1/60 + 1/62
    # query 2: dense has x 2nd and misses z (appended last: relevance 0 1 0 1); sparse finds neither
    assert results["rrf_dense_mrr@10"] == pytest.approx((0.5 + 0.5) / 2)
    assert results["rrf_dense_map"] == pytest.approx((0.5 + (1 / 2 + 2 / 4) / 2) / 2)
    assert results["rrf_sparse_mrr@10"] == pytest.approx((1.0 + 0.0) / 2)
    # fused query 2: y 1/60 + 1/63, x 1/61 + 1/63, w 1/62 + 1/60, v, u -> w y x v u: x 3rd
    assert results["rrf_mrr@10"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert set(results) == {f"rrf_{p}{m}" for p in ("dense_", "sparse_", "") for m in ("map", "mrr@10", "ndcg@10")}
    assert evaluator.primary_metric == "rrf_ndcg@10"
    lines = (tmp_path / "ReciprocalRankFusion_evaluation_rrf_predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"documents": ["b", "a", "d", "c"]' in lines[0]
    assert evaluator(None)["rrf_mrr@10"] == results["rrf_mrr@10"]  # the trainer's call form
    with pytest.raises(ValueError, match="mismatch"):
        ReciprocalRankFusionEvaluator(dense, sparse[::-1])
