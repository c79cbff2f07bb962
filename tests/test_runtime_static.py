"""Static-embedding models on the torch-free path: ``backend="onnx"`` runs them as a NumPy table lookup,
with the torch ``StaticEmbedding``'s embeddings."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sentencekit import SentenceTransformer
from sentencekit.engines.static_engine import StaticEngine
from sentencekit.modules import Dense, Normalize, StaticEmbedding
from tests.conftest import package_folder

TEXTS = ["How do I get a refund?", "", "the weather in paris is mild today " * 40, "zzqx unknownword", "refund"]


@pytest.fixture()
def static_dir(tiny_bert_dir, tmp_path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json"))
    static = StaticEmbedding(tokenizer, np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 16)),
                             drop_token_ids=(1,))
    model = SentenceTransformer(modules=[static, Dense(16, 8), Normalize()], device="cpu",
                                     prompts={"query": "query: "})
    model.save(tmp_path / "static")
    return tmp_path / "static"


def test_static_folder_runs_without_a_graph_and_matches_torch(static_dir):
    torch_model = SentenceTransformer(str(static_dir), device="cpu")
    model = SentenceTransformer(str(static_dir), backend="onnx")
    assert type(model) is SentenceTransformer and isinstance(model.engine, StaticEngine)
    assert not (static_dir / "onnx").exists()  # nothing was exported
    np.testing.assert_allclose(model.encode(TEXTS), torch_model.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(model.encode_query(TEXTS), torch_model.encode_query(TEXTS), atol=1e-6)
    for kwargs in ({"truncate_dim": 4, "normalize_embeddings": True}, {"precision": "int8"}):
        got, want = model.encode(TEXTS, **kwargs), torch_model.encode(TEXTS, **kwargs)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.abs(got.astype(np.float32) - want.astype(np.float32)).max() <= (1 if "precision" in kwargs else 1e-6)
    assert model.encode("refund").shape == (8,) and model.get_sentence_embedding_dimension() == 8
    assert model.last_encode_info.num_truncated == 0  # no length limit: nothing is ever cut
    with pytest.raises(ValueError, match="no token embeddings"):
        model.encode(TEXTS, output_value="token_embeddings")
    with pytest.raises(ValueError, match="float32"):
        SentenceTransformer(str(static_dir), backend="onnx", compute_dtype="int8")


@pytest.mark.real_model
def test_real_model2vec_folder_matches_torch():
    folder = package_folder("static_model", "model")
    assert folder is not None, "tokenlearn-static-model is not installed"
    model = SentenceTransformer(str(folder), backend="onnx")
    assert isinstance(model.engine, StaticEngine)
    np.testing.assert_allclose(model.encode(TEXTS), SentenceTransformer(str(folder), device="cpu").encode(TEXTS),
                               atol=1e-6)


def test_static_path_imports_no_torch(static_dir):
    code = (f"import json, sys\nfrom sentencekit import SentenceTransformer\n"
            f"m = SentenceTransformer({str(static_dir)!r}, backend='onnx')\nout = m.encode(['hello world'])\n"
            "print(json.dumps({'shape': list(out.shape), 'loaded': sorted(x for x in ('torch', 'transformers', "
            "'onnxruntime') if x in sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"shape": [1, 8], "loaded": []}


@pytest.mark.pool
def test_static_model_in_a_pool(static_dir):
    model = SentenceTransformer(str(static_dir), backend="onnx")
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        np.testing.assert_allclose(model.encode(TEXTS * 5, pool=pool, chunk_size=4), model.encode(TEXTS * 5),
                                   atol=1e-6)


@pytest.mark.real_model
def test_fingerprint_equals_torch_so_indexes_open_on_either_backend(static_dir, tmp_path):
    from sentencekit import EmbeddingIndex
    from sentencekit.fingerprint import model_fingerprint

    torch_model = SentenceTransformer(str(static_dir), device="cpu")
    model = SentenceTransformer(str(static_dir), backend="onnx")
    assert model_fingerprint(model) == model_fingerprint(torch_model)
    folder = package_folder("static_model", "model")
    assert model_fingerprint(SentenceTransformer(str(folder), backend="onnx")) == model_fingerprint(
        SentenceTransformer(str(folder), device="cpu"))
    index = EmbeddingIndex.create(tmp_path / "idx", torch_model)
    index.add(TEXTS)
    hits = EmbeddingIndex.open(tmp_path / "idx", model).search("a refund", top_k=2)
    assert [h["id"] for h in hits] == [h["id"] for h in index.search("a refund", top_k=2)]
