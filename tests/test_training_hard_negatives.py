"""mine_hard_negatives on a stand-in model whose vectors are fixed, so rankings are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from sentencekit.util import mine_hard_negatives

# 2-D directions: the angle from the query decides the rank.
VECTORS = {
    "q1": [1.0, 0.0],
    "q2": [0.0, 1.0],
    "p1": [0.95, 0.31],   # q1's positive
    "p2": [0.31, 0.95],   # q2's positive
    "n_close": [0.9, 0.44],    # nearest non-positive to q1
    "n_mid": [0.7, 0.71],
    "n_far": [-1.0, 0.0],
}


class FixedModel:
    def _encode(self, texts, **kwargs):
        vectors = np.array([VECTORS[t] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    encode_query = encode_document = _encode


class FixedReranker:
    """Scores pairs by a table: the opposite order of the embeddings for q1."""

    table = {("q1", "n_close"): 0.1, ("q1", "n_mid"): 0.8, ("q1", "n_far"): 0.5, ("q1", "p1"): 0.9,
             ("q1", "p2"): 0.3}

    def predict(self, pairs, **kwargs):
        return np.array([self.table.get(tuple(p), 0.0) for p in pairs])


@pytest.fixture()
def pairs():
    return Dataset.from_dict({"query": ["q1", "q2"], "answer": ["p1", "p2"]})


CORPUS = ["n_close", "n_mid", "n_far"]


def cos(a, b):
    a, b = np.array(VECTORS[a]), np.array(VECTORS[b])
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_triplets_take_the_top_ranked_non_positives(pairs):
    out = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=2, verbose=False)
    assert out.column_names == ["query", "answer", "negative"]
    q1 = [r["negative"] for r in out if r["query"] == "q1"]
    # q1's candidates by cosine: p1 (own positive, skipped), n_close, n_mid, p2, n_far
    assert q1 == ["n_close", "n_mid"]
    assert all(r["negative"] != r["answer"] for r in out)


def test_range_and_score_filters(pairs):
    out = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, range_min=1, num_negatives=5, verbose=False)
    assert [r["negative"] for r in out if r["query"] == "q1"] == ["n_mid", "p2", "n_far"]
    out = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, max_score=0.85, num_negatives=5, verbose=False)
    assert all(cos(r["query"], r["negative"]) <= 0.85 for r in out)
    assert "n_close" not in [r["negative"] for r in out if r["query"] == "q1"]  # cos 0.898 > 0.85
    margin = 0.2
    out = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, absolute_margin=margin, num_negatives=5,
                              verbose=False)
    for r in out:
        assert cos(r["query"], r["negative"]) <= cos(r["query"], r["answer"]) - margin


def test_cross_encoder_rescoring(pairs):
    out = mine_hard_negatives(pairs.select([0]), FixedModel(), corpus=CORPUS, cross_encoder=FixedReranker(),
                              num_negatives=2, output_format="n-tuple-scores", verbose=False)
    row = out[0]
    assert [row["negative_1"], row["negative_2"]] == ["n_mid", "n_far"]  # reranker order, not embedding order
    assert row["score"] == pytest.approx([0.9, 0.8, 0.5])


@pytest.mark.parametrize("fmt, columns", [
    ("n-tuple", ["query", "answer", "negative_1", "negative_2"]),
    ("labeled-pair", ["query", "passage", "label"]),
    ("labeled-list", ["query", "passages", "labels"]),
])
def test_output_formats(pairs, fmt, columns):
    out = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=2, output_format=fmt,
                              verbose=False)
    assert out.column_names == columns
    if fmt == "labeled-pair":
        assert sorted(out["label"]) == [0, 0, 0, 0, 1, 1]
    if fmt == "labeled-list":
        assert out[0]["labels"] == [1, 0, 0] and out[0]["passages"][0] == "p1"


def test_random_sampling_is_seeded_and_faiss_agrees(pairs):
    a = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=2, sampling_strategy="random",
                            verbose=False)
    b = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=2, sampling_strategy="random",
                            verbose=False)
    assert a.to_list() == b.to_list()
    exact = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=3, verbose=False)
    with_faiss = mine_hard_negatives(pairs, FixedModel(), corpus=CORPUS, num_negatives=3, use_faiss=True,
                                     verbose=False)
    assert exact.to_list() == with_faiss.to_list()


def test_bad_arguments(pairs):
    with pytest.raises(ValueError, match="Column 'nope'"):
        mine_hard_negatives(pairs, FixedModel(), anchor_column_name="nope")
    with pytest.raises(ValueError, match="output_format"):
        mine_hard_negatives(pairs, FixedModel(), output_format="pairs")


def test_with_the_tiny_real_model(tiny_model):
    data = Dataset.from_dict({"q": ["how do i get a refund", "reset my password"],
                              "a": ["refund policy please", "password reset help"]})
    out = mine_hard_negatives(data, tiny_model, corpus=["the cat sat on the mat", "the weather in paris"],
                              num_negatives=1, verbose=False)
    assert len(out) == 2 and all(r["negative"] != r["a"] for r in out)
