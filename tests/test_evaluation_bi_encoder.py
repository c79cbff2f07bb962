"""Bi-encoder evaluators on a stand-in model that returns fixed vectors, so every expected metric is
worked out by hand (in the comments); plus smoke tests with the tiny random model and all-MiniLM-L6-v2."""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import pytest
import torch

from sentencekit.evaluation import (
    BinaryClassificationEvaluator,
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
    MSEEvaluator,
    ParaphraseMiningEvaluator,
    RerankingEvaluator,
    SequentialEvaluator,
    SimilarityFunction,
    TranslationEvaluator,
    TripletEvaluator,
)
from sentencekit.evaluation import paraphrase_mining as pm


def unit(degrees: float) -> list[float]:
    """A 2-D unit vector at an angle: the cosine of two of them is the cosine of the angle between."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


class VectorModel:
    """Stand-in SentenceTransformer: fixed vectors per text. ``query_vectors`` override ``vectors`` in
    ``encode_query`` (so a test can tell which method embedded what); every call is recorded."""

    def __init__(self, vectors: dict[str, list[float]], query_vectors: dict[str, list[float]] | None = None,
                 similarity_fn_name: str = "cosine") -> None:
        self.vectors, self.query_vectors = vectors, query_vectors or {}
        self.similarity_fn_name = similarity_fn_name
        self.calls: list[tuple[str, list[str], dict[str, Any]]] = []

    def _encode(self, kind: str, table: dict[str, list[float]], sentences: list[str], convert_to_tensor: bool = False,
                convert_to_numpy: bool = True, truncate_dim: int | None = None, **kwargs: Any) -> Any:
        self.calls.append((kind, list(sentences), kwargs))
        embeddings = np.array([table[s] for s in sentences], dtype=np.float32)[:, :truncate_dim]
        return torch.from_numpy(embeddings) if convert_to_tensor else embeddings

    def encode(self, sentences: list[str], **kwargs: Any) -> Any:
        return self._encode("encode", self.vectors, sentences, **kwargs)

    def encode_query(self, sentences: list[str], **kwargs: Any) -> Any:
        return self._encode("query", {**self.vectors, **self.query_vectors}, sentences, **kwargs)

    def encode_document(self, sentences: list[str], **kwargs: Any) -> Any:
        return self._encode("document", self.vectors, sentences, **kwargs)


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# -- EmbeddingSimilarityEvaluator --------------------------------------------------------------------------
STS_VECTORS = {"a": unit(0), "b1": unit(0), "b2": unit(60), "b3": unit(90), "b4": unit(120)}
STS = (["a"] * 4, ["b1", "b2", "b3", "b4"], [4.0, 3.0, 1.0, 1.0])  # cosines 1, .5, 0, -.5


def test_embedding_similarity_by_hand(tmp_path):
    model = VectorModel(STS_VECTORS)
    evaluator = EmbeddingSimilarityEvaluator(*STS, name="sts")
    assert evaluator.primary_metric == "sts_spearman_cosine" and evaluator.greater_is_better
    results = evaluator(model, output_path=str(tmp_path), epoch=1, steps=5)
    # Pearson: gold centred [1.75, .75, -1.25, -1.25], cosines centred [.75, .25, -.25, -.75]
    #   sum of products 2.75; sums of squares 6.75 and 1.25
    # Spearman: gold ranks [4, 3, 1.5, 1.5] (tie), cosine ranks [4, 3, 2, 1]
    #   centred [1.5, .5, -1, -1] and [1.5, .5, -.5, -1.5]: 4.5 / sqrt(4.5 * 5)
    assert results == pytest.approx({"sts_pearson_cosine": 2.75 / math.sqrt(6.75 * 1.25),
                                     "sts_spearman_cosine": 4.5 / math.sqrt(4.5 * 5)})
    assert all(type(v) is float for v in results.values())
    evaluator(model, output_path=str(tmp_path), epoch=2, steps=10)
    rows = read_csv(tmp_path / "similarity_evaluation_sts_results.csv")
    assert rows[0] == ["epoch", "steps", "pearson_cosine", "spearman_cosine"]
    assert [r[:2] for r in rows[1:]] == [["1", "5"], ["2", "10"]]
    assert float(rows[1][3]) == pytest.approx(results["sts_spearman_cosine"])


def test_embedding_similarity_functions_and_primary():
    # the model's similarity function is the default: unit vectors, so dot products = cosines
    results = EmbeddingSimilarityEvaluator(*STS)(VectorModel(STS_VECTORS, similarity_fn_name="dot"))
    assert set(results) == {"pearson_dot", "spearman_dot"}
    assert results["pearson_dot"] == pytest.approx(2.75 / math.sqrt(6.75 * 1.25))

    evaluator = EmbeddingSimilarityEvaluator(*STS, similarity_fn_names=["cosine", SimilarityFunction.EUCLIDEAN])
    results = evaluator(VectorModel(STS_VECTORS))
    assert list(results) == ["pearson_cosine", "spearman_cosine", "pearson_euclidean", "spearman_euclidean",
                             "pearson_max", "spearman_max"]
    # euclidean = -sqrt(2 - 2 cos): the same order, so the same Spearman; Pearson by hand from distances
    distances = -np.sqrt(2 - 2 * np.array([1.0, 0.5, 0.0, -0.5]))
    gold = np.array(STS[2]) - np.mean(STS[2])
    d = distances - distances.mean()
    assert results["pearson_euclidean"] == pytest.approx((gold @ d) / math.sqrt((gold @ gold) * (d @ d)), abs=1e-6)
    assert results["spearman_euclidean"] == pytest.approx(results["spearman_cosine"])
    assert results["pearson_max"] == max(results["pearson_cosine"], results["pearson_euclidean"])
    assert evaluator.primary_metric == "spearman_max"
    main = EmbeddingSimilarityEvaluator(*STS, main_similarity="manhattan", name="x")
    assert main.similarity_fn_names == ["manhattan"] and main.primary_metric == "x_spearman_manhattan"
    with pytest.raises(ValueError, match="same length"):
        EmbeddingSimilarityEvaluator(["a"], ["b1", "b2"], [1.0])
    with pytest.raises(ValueError, match="Unknown similarity"):
        EmbeddingSimilarityEvaluator(*STS, similarity_fn_names=["jaccard"])


# -- InformationRetrievalEvaluator -------------------------------------------------------------------------
# Dot product with one-hot queries: a document's score for query i is its i-th component.
IR_QUERIES = {"q1": "query one", "q2": "query two", "q3": "query three", "q4": "no relevant docs"}
IR_CORPUS = {"d1": "doc 1", "d2": "doc 2", "d3": "doc 3", "d4": "doc 4", "d5": "doc 5", "d6": "doc 6"}
IR_VECTORS = {
    "query one": [1, 0, 0], "query two": [0, 1, 0], "query three": [0, 0, 1], "no relevant docs": [1, 1, 1],
    "doc 1": [0.9, 0.1, 0.3], "doc 2": [0.8, 0.7, 0.2], "doc 3": [0.7, 0.6, 0.1],
    "doc 4": [0.6, 0.9, 0.6], "doc 5": [0.5, 0.8, 0.5], "doc 6": [0.4, 0.2, 0.4],
}
IR_RELEVANT = {"q1": {"d1", "d3"}, "q2": {"d3"}, "q3": {"d6", "d2"}, "q4": set()}
# Rankings and relevance (q4 has no relevant document: skipped):
#   q1: d1 d2 d3 d4 d5 d6 -> 1 0 1 0 0 0   (2 relevant)
#   q2: d4 d5 d2 d3 d6 d1 -> 0 0 0 1 0 0   (1 relevant)
#   q3: d4 d5 d6 d1 d2 d3 -> 0 0 1 0 1 0   (2 relevant)
IDCG2 = 1 + 1 / math.log2(3)  # ideal DCG with two relevant documents
IR_EXPECTED = {
    "dot_accuracy@1": 1 / 3, "dot_accuracy@3": 2 / 3, "dot_accuracy@5": 1.0, "dot_accuracy@10": 1.0,
    # precision@k: (hits of q1 + q2 + q3) / k / 3 queries
    "dot_precision@1": (1 + 0 + 0) / 1 / 3, "dot_recall@1": (1 / 2 + 0 + 0) / 3,
    "dot_precision@3": (2 + 0 + 1) / 3 / 3, "dot_recall@3": (1 + 0 + 1 / 2) / 3,
    "dot_precision@5": (2 + 1 + 2) / 5 / 3, "dot_recall@5": 1.0,
    "dot_precision@10": (2 + 1 + 2) / 10 / 3, "dot_recall@10": 1.0,
    # DCG: q1 1 + 1/log2(4); q2 1/log2(5) (ideal 1); q3 1/log2(4) + 1/log2(6)
    "dot_ndcg@10": ((1 + 1 / math.log2(4)) / IDCG2 + 1 / math.log2(5)
                    + (1 / math.log2(4) + 1 / math.log2(6)) / IDCG2) / 3,
    "dot_mrr@10": (1 + 1 / 4 + 1 / 3) / 3,
    # precision at each hit / min(100, relevant): q1 (1/1 + 2/3)/2, q2 (1/4)/1, q3 (1/3 + 2/5)/2
    "dot_map@100": ((1 + 2 / 3) / 2 + 1 / 4 + (1 / 3 + 2 / 5) / 2) / 3,
}


def test_information_retrieval_by_hand(tmp_path):
    model = VectorModel(IR_VECTORS, similarity_fn_name="dot")
    evaluator = InformationRetrievalEvaluator(IR_QUERIES, IR_CORPUS, IR_RELEVANT, name="toy",
                                              query_prompt_name="query", corpus_prompt="passage: ")
    results = evaluator(model, output_path=str(tmp_path))
    assert results == pytest.approx({f"toy_{k}": v for k, v in IR_EXPECTED.items()}, abs=1e-6)
    # sentence-transformers' order: each metric over its k values
    assert list(results) == [f"toy_dot_{metric}@{k}" for metric, ks in [("accuracy", [1, 3, 5, 10]),
                             ("precision", [1, 3, 5, 10]), ("recall", [1, 3, 5, 10]), ("ndcg", [10]),
                             ("mrr", [10]), ("map", [100])] for k in ks]
    assert evaluator.primary_metric == "toy_dot_ndcg@10"
    # queries through encode_query, the corpus through encode_document, each with its prompt
    (kind_q, texts_q, kwargs_q), (kind_d, texts_d, kwargs_d) = model.calls
    assert (kind_q, texts_q, kwargs_q["prompt_name"]) == ("query", ["query one", "query two", "query three"], "query")
    assert (kind_d, len(texts_d), kwargs_d["prompt"]) == ("document", 6, "passage: ")
    rows = read_csv(tmp_path / "Information-Retrieval_evaluation_toy_results.csv")
    assert rows[0][:6] == ["epoch", "steps", "dot-Accuracy@1", "dot-Accuracy@3", "dot-Accuracy@5", "dot-Accuracy@10"]
    assert rows[0][6:8] == ["dot-Precision@1", "dot-Recall@1"] and rows[0][-3:] == ["dot-MRR@10", "dot-NDCG@10",
                                                                                    "dot-MAP@100"]
    assert float(rows[1][rows[0].index("dot-MAP@100")]) == pytest.approx(IR_EXPECTED["dot_map@100"])


def test_information_retrieval_small_k_chunks_and_score_functions():
    from sentencekit.util import cos_sim, dot_score

    model = VectorModel(IR_VECTORS, similarity_fn_name="dot")
    kwargs = {"mrr_at_k": [3], "ndcg_at_k": [2], "accuracy_at_k": [1], "precision_recall_at_k": [2], "map_at_k": [2]}
    whole = InformationRetrievalEvaluator(IR_QUERIES, IR_CORPUS, IR_RELEVANT, **kwargs)(model)
    chunked = InformationRetrievalEvaluator(IR_QUERIES, IR_CORPUS, IR_RELEVANT, corpus_chunk_size=4, **kwargs)(model)
    assert chunked == pytest.approx(whole)
    # mrr@3: q1 1, q2 0 (rank 4), q3 1/3; ndcg@2: only q1 scores, DCG 1 over ideal 1 + 1/log2(3)
    # map@2: q1 (1/1) / min(2, 2), q2 and q3 0
    assert whole["dot_mrr@3"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert whole["dot_ndcg@2"] == pytest.approx(1 / IDCG2 / 3)
    assert whole["dot_map@2"] == pytest.approx(0.5 / 3)

    evaluator = InformationRetrievalEvaluator(IR_QUERIES, IR_CORPUS, IR_RELEVANT,
                                              score_functions={"cos_sim": cos_sim, "dot_score": dot_score},
                                              main_score_function="dot_score", **kwargs)
    results = evaluator(model)
    assert results["dot_score_ndcg@2"] == pytest.approx(whole["dot_ndcg@2"])
    assert evaluator.primary_metric == "dot_score_ndcg@2"
    assert evaluator.csv_headers[2] == "cos_sim-Accuracy@1"  # score functions in sorted order


# -- BinaryClassificationEvaluator -------------------------------------------------------------------------
# "a" against six sentences at cosines .9 .8 .6 .4 .2 0, labels 1 0 1 1 0 0
BC_COSINES = [0.9, 0.8, 0.6, 0.4, 0.2, 0.0]
BC_VECTORS = {"a": [1.0, 0.0], **{f"s{i}": [c, math.sqrt(1 - c * c)] for i, c in enumerate(BC_COSINES)}}
BC_DATA = (["a"] * 6, [f"s{i}" for i in range(6)], [1, 0, 1, 1, 0, 0])


def test_binary_classification_by_hand(tmp_path):
    model = VectorModel(BC_VECTORS)
    evaluator = BinaryClassificationEvaluator(*BC_DATA, name="dup")
    results = evaluator(model, output_path=str(tmp_path))
    # sweep after each rank: accuracy 4/6 3/6 4/6 5/6 4/6 -> 5/6 between .4 and .2
    # F1 2/4 2/5 4/6 6/7 6/8 -> 6/7 (precision 3/4, recall 1), same threshold
    # AP: precision at the positives (ranks 1, 3, 4): (1 + 2/3 + 3/4) / 3
    # MCC at .3: tp 3 fp 1 tn 2 fn 0 -> 6 / sqrt(4 * 3 * 3 * 2)
    assert results == pytest.approx({
        "dup_cosine_accuracy": 5 / 6, "dup_cosine_accuracy_threshold": 0.3, "dup_cosine_f1": 6 / 7,
        "dup_cosine_f1_threshold": 0.3, "dup_cosine_precision": 3 / 4, "dup_cosine_recall": 1.0,
        "dup_cosine_ap": (1 + 2 / 3 + 3 / 4) / 3, "dup_cosine_mcc": 6 / math.sqrt(72)}, abs=1e-6)
    assert evaluator.primary_metric == "dup_cosine_ap"
    assert len(model.calls) == 1 and model.calls[0][1] == ["a"] + [f"s{i}" for i in range(6)]  # each text once
    rows = read_csv(tmp_path / "binary_classification_evaluation_dup_results.csv")
    assert rows[0] == ["epoch", "steps", "cosine_accuracy", "cosine_accuracy_threshold", "cosine_f1",
                       "cosine_precision", "cosine_recall", "cosine_f1_threshold", "cosine_ap", "cosine_mcc"]
    assert float(rows[1][4]) == pytest.approx(6 / 7)


def test_binary_classification_distances_and_max():
    evaluator = BinaryClassificationEvaluator(*BC_DATA, similarity_fn_names=["cosine", "euclidean"])
    results = evaluator(VectorModel(BC_VECTORS))
    # unit vectors: distance sqrt(2 - 2 cos); the same ranking, so the same scores, and the threshold is
    # the distance midway between the 4th and 5th pair (cosines .4 and .2)
    assert results["euclidean_accuracy"] == pytest.approx(5 / 6)
    assert results["euclidean_f1_threshold"] == pytest.approx((math.sqrt(1.2) + math.sqrt(1.6)) / 2, abs=1e-6)
    assert results["euclidean_ap"] == pytest.approx(results["cosine_ap"])
    assert results["euclidean_mcc"] == pytest.approx(results["cosine_mcc"])
    assert results["max_accuracy_threshold"] == pytest.approx(max(0.3, (math.sqrt(1.2) + math.sqrt(1.6)) / 2))
    assert evaluator.primary_metric == "max_ap"
    with pytest.raises(ValueError, match="0 or 1"):
        BinaryClassificationEvaluator(["a"], ["s1"], [2])


# -- TripletEvaluator ------------------------------------------------------------------------------------
def test_triplet_by_hand_uses_query_embeddings_for_anchors(tmp_path):
    # as a query "a" is at 0 degrees; as a document it would be at 90 (which would flip every triplet)
    model = VectorModel({"a": unit(90), "p1": unit(0), "n1": unit(90), "p2": unit(53.13), "n2": unit(36.87),
                         "p3": unit(36.87), "n3": unit(53.13)}, query_vectors={"a": unit(0)})
    triplets = (["a", "a", "a"], ["p1", "p2", "p3"], ["n1", "n2", "n3"])
    # cosines positive vs negative: 1 > 0 yes; .6 > .8 no; .8 > .6 yes
    evaluator = TripletEvaluator(*triplets, name="t")
    assert evaluator(model, output_path=str(tmp_path)) == pytest.approx({"t_cosine_accuracy": 2 / 3})
    assert [kind for kind, _, _ in model.calls] == ["query", "document", "document"]
    assert evaluator.primary_metric == "t_cosine_accuracy"
    assert read_csv(tmp_path / "triplet_evaluation_t_results.csv")[0] == ["epoch", "steps", "accuracy_cosine"]
    # a margin: .8 > .6 + .1 still, .8 > .6 + .3 not
    assert TripletEvaluator(*triplets, margin=0.1)(model)["cosine_accuracy"] == pytest.approx(2 / 3)
    assert TripletEvaluator(*triplets, margin={"cosine": 0.3})(model)["cosine_accuracy"] == pytest.approx(1 / 3)
    both = TripletEvaluator(*triplets, similarity_fn_names=["cosine", "manhattan"], margin={"manhattan": 10})
    results = both(model)
    assert results == pytest.approx({"cosine_accuracy": 2 / 3, "manhattan_accuracy": 0.0, "max_accuracy": 2 / 3})
    assert both.primary_metric == "max_accuracy"
    main = TripletEvaluator(*triplets, main_similarity_function="dot")
    assert main.primary_metric == "dot_accuracy"


# -- ParaphraseMiningEvaluator ------------------------------------------------------------------------------
# angles a 0, b 10, c 35, d 75, e 90 -> pairs by angle: ab 10, de 15, bc 25, ac 35, cd 40, ce 55, ...
PM_SENTENCES = {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
PM_VECTORS = {"A": unit(0), "B": unit(10), "C": unit(35), "D": unit(75), "E": unit(90)}
COS = {deg: math.cos(math.radians(deg)) for deg in (10, 15, 25, 35, 40)}


@pytest.fixture(params=["library", "fallback"])
def mining(request, monkeypatch):
    """Run the paraphrase tests with sentencekit.util's miner (when it exists) and with the fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(pm, "_mining_function", lambda: pm.mine_pairs)
    elif pm._mining_function() is pm.mine_pairs:
        pytest.skip("sentencekit.util has no paraphrase_mining_embeddings yet")
    return request.param


def test_paraphrase_mining_by_hand(tmp_path, mining):
    model = VectorModel(PM_VECTORS)
    evaluator = ParaphraseMiningEvaluator(PM_SENTENCES, duplicates_list=[("a", "b"), ("c", "e"), ("a", "zz")],
                                          name="pm")
    results = evaluator(model, output_path=str(tmp_path))
    # duplicates ab (rank 1) and ce (rank 6); ("a", "zz") is not in the map
    # AP (1/1 + 2/6) / 2; best F1 at rank 1: P 1, R 1/2 -> 2/3, threshold midway between ab and de
    assert evaluator.total_num_duplicates == 2
    assert results == pytest.approx({"pm_average_precision": (1 + 2 / 6) / 2, "pm_f1": 2 / 3, "pm_precision": 1.0,
                                     "pm_recall": 0.5, "pm_threshold": (COS[10] + COS[15]) / 2}, abs=1e-6)
    assert evaluator.primary_metric == "pm_average_precision"
    assert read_csv(tmp_path / "paraphrase_mining_evaluation_pm_results.csv")[0] == [
        "epoch", "steps", "precision", "recall", "f1", "threshold", "average_precision"]


def test_paraphrase_mining_closure_top_k_and_max_pairs(mining):
    model = VectorModel(PM_VECTORS)
    # ab, bc + closure ac: ranked ab(1) de bc(3) ac(4): AP (1 + 2/3 + 3/4) / 3; F1 after rank 4: 6/7
    closed = ParaphraseMiningEvaluator(PM_SENTENCES, duplicates_dict={"a": {"b": True}, "b": {"c": True, "d": False}},
                                       add_transitive_closure=True)
    assert closed.total_num_duplicates == 3
    assert closed(model) == pytest.approx({"average_precision": (1 + 2 / 3 + 3 / 4) / 3, "f1": 6 / 7,
                                           "precision": 3 / 4, "recall": 1.0,
                                           "threshold": (COS[35] + COS[40]) / 2}, abs=1e-6)
    # top_k=1: nearest neighbours a-b, b-a, c-b, d-e, e-d -> pairs ab, de, bc
    nearest = ParaphraseMiningEvaluator(PM_SENTENCES, duplicates_list=[("a", "b"), ("c", "e")], top_k=1)
    assert nearest(model)["average_precision"] == pytest.approx(1 / 2)
    limited = ParaphraseMiningEvaluator(PM_SENTENCES, duplicates_list=[("b", "c")], max_pairs=2)
    assert limited(model)["average_precision"] == 0.0  # bc is the 3rd best pair


def test_fallback_miner_agrees_with_search_helper():
    try:
        from sentencekit.search.retrieval import paraphrase_mining_embeddings
    except ImportError:
        pytest.skip("sentencekit.search.retrieval is not available")
    embeddings = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    expected = paraphrase_mining_embeddings(embeddings, top_k=3, max_pairs=50, query_chunk_size=7, corpus_chunk_size=9)
    got = pm.mine_pairs(embeddings, top_k=3, max_pairs=50, query_chunk_size=7, corpus_chunk_size=9)
    assert [(i, j) for _, i, j in got] == [(i, j) for _, i, j in expected]
    assert [s for s, _, _ in got] == pytest.approx([s for s, _, _ in expected], abs=1e-6)


# -- TranslationEvaluator, MSEEvaluator --------------------------------------------------------------------
def test_translation_by_hand(tmp_path):
    # sources at 0, 90, 53 degrees; targets at 0, 60, 16
    model = VectorModel({"s1": unit(0), "s2": unit(90), "s3": unit(53), "t1": unit(0), "t2": unit(60),
                         "t3": unit(16)})
    evaluator = TranslationEvaluator(["s1", "s2", "s3"], ["t1", "t2", "t3"], name="en-de", print_wrong_matches=True)
    # s1 -> t1 yes; s2 -> t2 (30 deg) yes; s3 -> t2 (7 deg) no        => 2/3
    # t1 -> s1 yes; t2 -> s3 (7 deg) no; t3 -> s1 (16 deg) no         => 1/3
    assert evaluator(model, output_path=str(tmp_path)) == pytest.approx(
        {"en-de_src2trg_accuracy": 2 / 3, "en-de_trg2src_accuracy": 1 / 3, "en-de_mean_accuracy": 0.5})
    assert evaluator.primary_metric == "en-de_mean_accuracy"
    rows = read_csv(tmp_path / "translation_evaluation_en-de_results.csv")
    assert rows[0] == ["epoch", "steps", "src2trg", "trg2src"] and float(rows[1][2]) == pytest.approx(2 / 3)


def test_mse_by_hand(tmp_path):
    teacher = VectorModel({"hello": [1.0, 2.0], "thanks": [0.0, 0.0]})
    student = VectorModel({"hallo": [1.0, 0.0], "danke": [1.0, 1.0]})
    evaluator = MSEEvaluator(["hello", "thanks"], ["hallo", "danke"], teacher_model=teacher, name="en-de")
    # squared differences 0, 4, 1, 1 -> mean 1.5 -> x100 -> negated
    assert evaluator(student, output_path=str(tmp_path)) == pytest.approx({"en-de_negative_mse": -150.0})
    assert evaluator.primary_metric == "en-de_negative_mse" and evaluator.greater_is_better
    assert read_csv(tmp_path / "mse_evaluation_en-de_results.csv") == [["epoch", "steps", "MSE"], ["-1", "-1", "150.0"]]
    with pytest.raises(ValueError, match="teacher_model"):
        MSEEvaluator(["hello"], ["hallo"])


# -- RerankingEvaluator, SequentialEvaluator ---------------------------------------------------------------
RR_VECTORS = {"q1": unit(90), "p1": unit(20), "n1": unit(10), "n2": unit(40),
              "q2": unit(0), "p2": unit(80), "p3": unit(30), "n3": unit(60)}
RR_QUERIES = {"q1": unit(0), "q2": unit(90)}  # as queries (documents would put them elsewhere)
RR_SAMPLES = [
    {"query": "q1", "positive": ["p1"], "negative": ["n1", "n2"]},        # ranked n1 p1 n2 -> 0 1 0
    {"query": "q2", "positive": ["p2", "p3"], "negative": ["n3"]},        # ranked p2 n3 p3 -> 1 0 1
    {"query": "q1", "positive": ["p1"], "negative": []},                 # no negative: skipped
]


@pytest.mark.parametrize("batched", [True, False])
def test_reranking_by_hand(tmp_path, batched):
    model = VectorModel(RR_VECTORS, query_vectors=RR_QUERIES)
    evaluator = RerankingEvaluator(RR_SAMPLES, name="rr", use_batched_encoding=batched)
    # MRR 1/2 and 1; NDCG 1/log2(3) and (1 + 1/log2(4)) / (1 + 1/log2(3)); AP 1/2 and (1 + 2/3) / 2
    assert evaluator(model, output_path=str(tmp_path)) == pytest.approx({
        "rr_map": (1 / 2 + (1 + 2 / 3) / 2) / 2, "rr_mrr@10": (1 / 2 + 1) / 2,
        "rr_ndcg@10": (1 / math.log2(3) + (1 + 1 / math.log2(4)) / IDCG2) / 2}, abs=1e-6)
    assert evaluator.primary_metric == "rr_ndcg@10"
    assert {kind for kind, _, _ in model.calls} == {"query", "document"}
    assert read_csv(tmp_path / "RerankingEvaluator_rr_results_@10.csv")[0] == ["epoch", "steps", "MAP", "MRR@10",
                                                                               "NDCG@10"]
    # at 1: only the second sample has its positive first
    assert RerankingEvaluator(RR_SAMPLES, at_k=1)(model) == pytest.approx(
        {"map": (1 / 2 + (1 + 2 / 3) / 2) / 2, "mrr@1": 0.5, "ndcg@1": 0.5}, abs=1e-6)


def test_sequential_by_hand(tmp_path):
    model = VectorModel({**STS_VECTORS, **BC_VECTORS})
    sts = EmbeddingSimilarityEvaluator(*STS, name="sts")
    dup = BinaryClassificationEvaluator(*BC_DATA, name="dup")
    results = SequentialEvaluator([sts, dup])(model, output_path=str(tmp_path))
    assert results["sequential_score"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)  # the last primary: dup's AP
    assert {"sts_spearman_cosine", "dup_cosine_ap"} <= set(results)
    mean = SequentialEvaluator([sts, dup], main_score_function=lambda scores: sum(scores) / len(scores))
    assert mean(model)["sequential_score"] == pytest.approx((4.5 / math.sqrt(22.5) + (1 + 2 / 3 + 3 / 4) / 3) / 2)
    assert mean.primary_metric == "sequential_score"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary_classification_evaluation_dup_results.csv",
                                                          "similarity_evaluation_sts_results.csv"]


def test_config_and_description():
    assert InformationRetrievalEvaluator(IR_QUERIES, IR_CORPUS, IR_RELEVANT).description == "Information Retrieval"
    assert EmbeddingSimilarityEvaluator(*STS, truncate_dim=2, precision="int8").get_config_dict() == {
        "truncate_dim": 2, "precision": "int8"}
    assert RerankingEvaluator(RR_SAMPLES, at_k=5).get_config_dict() == {"at_k": 5}


# -- real models -------------------------------------------------------------------------------------------
def test_tiny_model_smoke(tiny_model, tmp_path):
    texts = ["how do i get a refund", "what is your return policy", "the cat sat on the mat",
             "reset my password", "cancel my subscription", "the weather in paris today"]
    evaluators = [
        EmbeddingSimilarityEvaluator(texts[:3], texts[3:], [0.2, 0.5, 0.9], name="sts"),
        EmbeddingSimilarityEvaluator(texts[:3], texts[3:], [0.2, 0.5, 0.9], name="sts", precision="binary"),
        InformationRetrievalEvaluator({"q": texts[0]}, dict(enumerate(texts)), {"q": {1}}, name="ir"),
        BinaryClassificationEvaluator(texts[:3], texts[3:], [1, 0, 1], name="bc"),
        TripletEvaluator(texts[:2], texts[2:4], texts[4:], name="tri", truncate_dim=16),
        ParaphraseMiningEvaluator(dict(enumerate(texts)), duplicates_list=[(0, 1)], name="pm"),
        TranslationEvaluator(texts[:3], texts[3:], name="tr"),
        RerankingEvaluator([{"query": texts[0], "positive": [texts[1]], "negative": texts[2:]}], name="rr"),
    ]
    results = SequentialEvaluator(evaluators)(tiny_model, output_path=str(tmp_path), epoch=0, steps=1)
    assert all(isinstance(v, float) and not math.isnan(v) for v in results.values())
    assert -1 <= results["sts_spearman_cosine"] <= 1 and 0 <= results["ir_cosine_ndcg@10"] <= 1
    assert results["sequential_score"] == results["rr_ndcg@10"]
    assert (tmp_path / "similarity_evaluation_sts_binary_results.csv").is_file()
    assert len(list(tmp_path.iterdir())) == len(evaluators)


@pytest.mark.real_model
def test_minilm_on_stsb(minilm):
    from sentencekit.datasets import load_stsb

    pairs = load_stsb("test")[:50]
    evaluator = EmbeddingSimilarityEvaluator([p.sentence1 for p in pairs], [p.sentence2 for p in pairs],
                                             [p.score / 5 for p in pairs], name="sts-test")
    results = evaluator(minilm)
    assert 0.7 < results["sts-test_spearman_cosine"] <= 1.0
    assert 0.7 < results["sts-test_pearson_cosine"] <= 1.0
