"""Stored indexes on the ONNX backend: a float32 export has the torch model's fingerprint (an index built
on one backend opens on the other), int8 is a different model, chunking works on the ONNX tokenizer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sentencekit import EmbeddingIndex, SentenceTransformer
from sentencekit.fingerprint import model_fingerprint
from sentencekit.search.chunking import chunk_texts, default_chunk_size
from sentencekit.search.index_errors import IndexMismatchError

pytest.importorskip("onnxruntime")

DOCS = ["how do i get a refund", "reset my password please", "the cat sat on the mat",
        "shipping is late for my order", "cancel the subscription today"]


@pytest.fixture()
def model_dir(tiny_st_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_st_dir, target)
    return target


def test_float32_export_carries_the_torch_fingerprint(model_dir):
    torch_model = SentenceTransformer(str(model_dir), device="cpu")
    onnx_model = SentenceTransformer(str(model_dir), backend="onnx")
    assert onnx_model.fingerprint() == model_fingerprint(onnx_model) == model_fingerprint(torch_model)
    int8 = SentenceTransformer(str(model_dir), backend="onnx", compute_dtype="int8")
    assert model_fingerprint(int8) != model_fingerprint(torch_model)
    assert model_fingerprint(int8) == model_fingerprint(
        SentenceTransformer(str(model_dir), backend="onnx", compute_dtype="int8"))  # stable across loads
    # a changed length limit changes what is embedded, on both backends
    onnx_model.max_seq_length = 16
    torch_model.max_seq_length = 16
    assert model_fingerprint(onnx_model) != model_fingerprint(SentenceTransformer(str(model_dir), backend="onnx"))
    assert model_fingerprint(torch_model) != model_fingerprint(SentenceTransformer(str(model_dir), device="cpu"))


def test_index_built_on_torch_opens_and_searches_on_onnx(model_dir, tmp_path):
    torch_model = SentenceTransformer(str(model_dir), device="cpu")
    index = EmbeddingIndex.create(tmp_path / "idx", torch_model)
    index.add(DOCS)
    expected = index.search("refund please", top_k=3)
    onnx_model = SentenceTransformer(str(model_dir), backend="onnx")
    reopened = EmbeddingIndex.open(tmp_path / "idx", onnx_model)
    got = reopened.search("refund please", top_k=3)
    assert [h["id"] for h in got] == [h["id"] for h in expected]
    np.testing.assert_allclose([h["score"] for h in got], [h["score"] for h in expected], atol=1e-5)
    # ... and documents added on ONNX sit with the torch ones
    reopened.add(["late delivery of the order"], ids=["late"])
    assert EmbeddingIndex.open(tmp_path / "idx", torch_model).search("delivery late", top_k=1)[0]["id"] in {
        "late", "3"}
    int8 = SentenceTransformer(str(model_dir), backend="onnx", compute_dtype="int8")
    with pytest.raises(IndexMismatchError, match="model fingerprint"):
        EmbeddingIndex.open(tmp_path / "idx", int8)


def test_chunking_on_the_onnx_tokenizer_equals_torch(model_dir, tmp_path):
    torch_model = SentenceTransformer(str(model_dir), device="cpu")
    onnx_model = SentenceTransformer(str(model_dir), backend="onnx")
    text = " ".join(f"Refund order payment card number {i}." for i in range(40))
    assert default_chunk_size(onnx_model) == default_chunk_size(torch_model)
    assert default_chunk_size(onnx_model, "query: ") == default_chunk_size(torch_model, "query: ")
    assert chunk_texts([text, ""], onnx_model.tokenizer, 20, 4) == chunk_texts([text, ""], torch_model.tokenizer, 20, 4)
    index = EmbeddingIndex.create(tmp_path / "idx", onnx_model)
    index.add([text, "the cat sat on the mat"], ids=["long", "cat"], chunk=True, chunk_overlap=4)
    assert index.manifest["counts"]["vectors"] > 2
    assert {h["id"] for h in index.search("refund", top_k=5)} == {"long", "cat"}


def test_cli_search_on_onnx_equals_torch(model_dir, tmp_path, capsys):
    from sentencekit.cli import main

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(DOCS)),
                      encoding="utf-8")
    results = {}
    for backend in ("onnx", "torch"):
        capsys.readouterr()
        assert main(["search", "refund please", "--model", str(model_dir), "--corpus", str(corpus), "--backend",
                     backend, "--rerank", "none", "--json", "-k", "3"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    onnx_hits, torch_hits = results["onnx"][0]["results"], results["torch"][0]["results"]
    assert [h["id"] for h in onnx_hits] == [h["id"] for h in torch_hits]
    np.testing.assert_allclose([h["score"] for h in onnx_hits], [h["score"] for h in torch_hits], atol=1e-5)
    # one managed index serves both backends: the torch run reused what the onnx run embedded
    assert len(list((tmp_path / "sentencekit-home" / "indexes").iterdir())) == 1
