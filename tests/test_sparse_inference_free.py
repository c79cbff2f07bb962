"""Inference-free SPLADE: a Router whose query route is a SparseStaticEmbedding (term presence x weight) and
whose document route is Transformer(fill-mask) + SpladePooling, as sentence-transformers 6.2 builds it;
encode_query / encode_document pick the route; saved in the Router layout and loaded back."""

from __future__ import annotations

import json

import pytest
import torch

from sentencekit import SparseEncoder
from sentencekit.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer
from tests.test_sparse_encoder import splade_reference

QUERIES = ["refund please", "hello hello world"]
DOCS = ["how do i get a refund", "the cat sat on the mat"]


@pytest.fixture()
def model(tiny_mlm_dir):
    transformer = Transformer(str(tiny_mlm_dir), transformer_task="fill-mask")
    torch.manual_seed(3)
    weight = torch.rand(transformer.tokenizer.vocab_size) + 0.5
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(transformer.tokenizer, weight)],
        document_modules=[transformer, SpladePooling("max")], default_route="document")
    return SparseEncoder(modules=[router], device="cpu")


def expected_query(model, text):
    static = model[0].sub_modules["query"][0]
    ids = set(static.tokenizer(text, add_special_tokens=False)["input_ids"])
    row = torch.zeros_like(static.weight)
    row[list(ids)] = static.weight.detach()[list(ids)]
    return row


def test_queries_are_term_weights_and_documents_are_splade(model, tiny_mlm_dir):
    queries = model.encode_query(QUERIES).to_dense()
    for row, text in zip(queries, QUERIES):
        torch.testing.assert_close(row, expected_query(model, text))
    assert int((queries[1] != 0).sum()) == 2  # "hello" twice counts once
    docs = model.encode_document(DOCS)
    torch.testing.assert_close(docs.to_dense(), splade_reference(tiny_mlm_dir, DOCS), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.encode(DOCS).to_dense(), docs.to_dense())  # default route: document
    assert model.get_embedding_dimension() == model.tokenizer.vocab_size
    assert model.similarity(model.encode_query(QUERIES), docs).shape == (2, 2)


def test_router_layout_saves_and_loads_back(model, tmp_path):
    out = tmp_path / "inference-free"
    model.save(out)
    assert [e["type"] for e in json.loads((out / "modules.json").read_text())] == \
        ["sentence_transformers.models.Router"]
    router = json.loads((out / "router_config.json").read_text())
    assert router["structure"] == {"query": ["query_0_SparseStaticEmbedding"],
                                   "document": ["document_0_Transformer", "document_1_SpladePooling"]}
    assert router["types"]["query_0_SparseStaticEmbedding"].endswith("sparse_static_embedding.SparseStaticEmbedding")
    assert router["types"]["document_0_Transformer"] == "sentence_transformers.base.modules.transformer.Transformer"
    assert json.loads((out / "query_0_SparseStaticEmbedding" / "config.json").read_text()) == {"frozen": False}
    loaded = SparseEncoder(str(out), device="cpu")
    assert torch.equal(loaded.encode_query(QUERIES).to_dense(), model.encode_query(QUERIES).to_dense())
    assert torch.equal(loaded.encode_document(DOCS).to_dense(), model.encode_document(DOCS).to_dense())


def test_weights_from_a_token_json(tiny_mlm_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mlm_dir))
    (tmp_path / "idf.json").write_text(json.dumps({"refund": 2.5, "hello": 1.5, "not-a-token": 9.0}))
    static = SparseStaticEmbedding.from_json(tmp_path / "idf.json", tokenizer)
    out = static(static.tokenize(["hello refund world"]))["sentence_embedding"][0]
    vocab = tokenizer.get_vocab()
    assert out[vocab["refund"]] == 2.5 and out[vocab["hello"]] == 1.5 and int((out != 0).sum()) == 2
    with pytest.raises(ValueError, match="shape"):
        SparseStaticEmbedding(tokenizer, torch.ones(3))
