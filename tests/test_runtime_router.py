"""Router (asymmetric) models on the torch-free path: each route runs its own way (an ONNX graph for a
transformer route, a NumPy lookup for a static one) and ``task`` picks the route as on torch."""

from __future__ import annotations

import numpy as np
import pytest

from sentencekit import SentenceTransformer
from sentencekit.engines.router_engine import RouterEngine
from sentencekit.modules import Normalize, Pooling, Router, StaticEmbedding, Transformer

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")  # TEXTS[2] is long

TEXTS = ["How do I get a refund?", "the cat sat on the mat", "reset my password please " * 30]


@pytest.fixture()
def router_dir(tiny_bert_dir, tmp_path):
    """Queries through a static table, documents through the transformer, then Normalize."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json"))
    static = StaticEmbedding(tokenizer, np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 32)))
    document = [Transformer(str(tiny_bert_dir), max_seq_length=32), Pooling(32, "mean")]
    router = Router.for_query_document([static], document, default_route="document")
    SentenceTransformer(modules=[router, Normalize()], device="cpu",
                             prompts={"query": "query: ", "document": ""}).save(tmp_path / "router")
    return tmp_path / "router"


def test_routes_match_torch(router_dir):
    torch_model = SentenceTransformer(str(router_dir), device="cpu")
    model = SentenceTransformer(str(router_dir), backend="onnx")
    assert type(model) is SentenceTransformer and isinstance(model.engine, RouterEngine)
    assert {r: type(e).__name__ for r, e in model.engine.route_engines.items()} == {
        "query": "StaticEngine", "document": "OnnxEngine"}
    np.testing.assert_allclose(model.encode_query(TEXTS), torch_model.encode_query(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.encode_document(TEXTS), torch_model.encode_document(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.encode(TEXTS), torch_model.encode(TEXTS), atol=1e-5)  # the default route
    np.testing.assert_allclose(model.encode(TEXTS, task="query", truncate_dim=8),
                               torch_model.encode(TEXTS, task="query", truncate_dim=8), atol=1e-5)
    assert model.last_encode_info.num_inputs == 3 and model.get_sentence_embedding_dimension() == 32
    # the tightest limit of the routes on both backends; each call reports the limit of its own route
    assert model.max_seq_length == torch_model.max_seq_length
    for m in (model, torch_model):
        m.encode_document(TEXTS)
        document_limit = m.last_encode_info.max_seq_length
        m.encode_query(TEXTS)
        assert (document_limit, m.last_encode_info.max_seq_length) == (torch_model[0].sub_modules["document"][0]
                                                                       .max_seq_length, float("inf"))
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        model.encode(TEXTS, task="nope")
    # a second load reuses the export (no route folders are written: routes are read from the spec)
    again = SentenceTransformer(str(router_dir), backend="onnx")
    assert again.engine.route_engines["document"].graph == model.engine.route_engines["document"].graph
    assert again.fingerprint() == model.fingerprint()


@pytest.mark.pool
def test_router_in_an_index_and_a_pool(router_dir, tmp_path):
    from sentencekit import EmbeddingIndex

    model = SentenceTransformer(str(router_dir), backend="onnx")
    index = EmbeddingIndex.create(tmp_path / "idx", model)
    index.add(TEXTS)
    torch_model = SentenceTransformer(str(router_dir), device="cpu")
    expected = torch_model.encode_query(["refund"], normalize_embeddings=True) @ \
        torch_model.encode_document(TEXTS, normalize_embeddings=True).T
    assert index.search("refund", top_k=1)[0]["id"] == str(int(np.argmax(expected)))
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        np.testing.assert_allclose(model.encode_query(TEXTS * 3, pool=pool, chunk_size=2),
                                   model.encode_query(TEXTS * 3), atol=1e-6)


def test_router_runs_without_torch_once_exported(router_dir):
    import json
    import subprocess
    import sys

    SentenceTransformer(str(router_dir), backend="onnx")  # exports the transformer route (torch, once)
    code = (f"import json, sys\nfrom sentencekit import SentenceTransformer\n"
            f"m = SentenceTransformer({str(router_dir)!r}, backend='onnx')\n"
            "q, d = m.encode_query(['refund?']), m.encode_document(['refunds take five days'])\n"
            "print(json.dumps({'shapes': [list(q.shape), list(d.shape)], 'loaded': sorted(x for x in "
            "('torch', 'transformers') if x in sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"shapes": [[1, 32], [1, 32]], "loaded": []}
