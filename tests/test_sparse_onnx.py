"""SparseEncoder on the torch-free backend: SPLADE exported with its pooling inside the ONNX graph (rows
``[b, vocab]`` come out of ONNX Runtime), equal to the torch backend for every pooling strategy and activation
and for mixed-length (padded) batches; the SciPy / NumPy output forms; max_active_dims; inference-free SPLADE
(a NumPy SparseStaticEmbedding query route + an ONNX document route); decode / sparsity / intersection /
similarity on SciPy input; the export cache; int8. Every model folder is a private copy (exports are written
beside the model)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sentencekit import SparseEncoder
from sentencekit.engines.onnx_engine import OnnxEngine
from sentencekit.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer
from sentencekit.pipeline.batching import TruncationWarning
from tests.test_sparse_encoder import TEXTS, splade_reference

pytest.importorskip("onnxruntime")
sp = pytest.importorskip("scipy.sparse")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")


def copy_model(src, tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture()
def mlm_copy(tiny_mlm_dir, tmp_path):
    return copy_model(tiny_mlm_dir, tmp_path)


def dense(x) -> np.ndarray:
    """A result of either backend as a dense NumPy array."""
    if isinstance(x, torch.Tensor):
        return (x.to_dense() if x.layout != torch.strided else x).numpy()
    return x.toarray() if sp.issparse(x) else np.asarray(x)


# -- the export and its outputs ----------------------------------------------------------------------------------
def test_onnx_equals_torch_and_the_export_is_cached_apart_from_an_embedder_export(mlm_copy, monkeypatch):
    model = SparseEncoder(str(mlm_copy), backend="onnx")
    assert isinstance(model.engine, OnnxEngine) and model.backend == "onnx"
    assert model.engine.meta["kind"] == "sparse" and model.engine.meta["pooling_strategy"] == "max"
    # ONNX Runtime returns pooled rows only: one output, [batch, vocab]
    (output,) = model.session.get_outputs()
    vocab = model.tokenizer.backend.get_vocab_size()
    assert output.name == "sentence_embedding" and len(output.shape) == 2 and output.shape[1] == vocab
    emb = model.encode(TEXTS, batch_size=2)  # length-sorted batches of 2: padding in most of them
    assert isinstance(emb, sp.csr_matrix) and emb.dtype == np.float32 and emb.shape == (len(TEXTS), vocab)
    assert emb.has_sorted_indices and not (emb.data == 0).any()
    np.testing.assert_allclose(emb.toarray(), splade_reference(mlm_copy, TEXTS).numpy(), atol=1e-4, rtol=1e-4)
    torch_emb = SparseEncoder(str(mlm_copy), device="cpu").encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(emb.toarray(), dense(torch_emb), atol=1e-4, rtol=1e-4)
    assert model.get_embedding_dimension() == vocab == model.engine.dimension()

    import sentencekit.engines.onnx_export as export

    sparse_graph = model.engine.graph
    monkeypatch.setattr(export, "export_spec", lambda *a, **k: pytest.fail("exported twice"))
    again = SparseEncoder(str(mlm_copy), backend="onnx")
    assert again.engine.graph == sparse_graph and again.fingerprint() == model.fingerprint()
    np.testing.assert_array_equal(again.encode(TEXTS).toarray(), model.encode(TEXTS).toarray())
    monkeypatch.undo()
    # the same folder as a dense embedder (mean pooling over the MLM's hidden states) is another graph
    from sentencekit import SentenceTransformer

    with pytest.warns(UserWarning, match="mean"):
        dense_model = SentenceTransformer(str(mlm_copy), backend="onnx")
    assert dense_model.engine.graph != sparse_graph and dense_model.engine.meta["kind"] == "embedder"
    assert SparseEncoder(str(mlm_copy), backend="onnx").engine.graph == sparse_graph


@pytest.mark.parametrize("strategy", ["max", "sum"])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_every_pooling_and_activation_with_padding_equals_torch(tiny_mlm_dir, tmp_path, strategy, activation):
    folder = tmp_path / "splade"
    SparseEncoder(modules=[Transformer(str(tiny_mlm_dir), transformer_task="fill-mask", max_seq_length=12),
                           SpladePooling(strategy, activation)], device="cpu").save(folder)
    model = SparseEncoder(str(folder), backend="onnx")
    assert model.engine.meta["activation_function"] == activation
    reference = splade_reference(tiny_mlm_dir, TEXTS, max_length=12, activation=activation, strategy=strategy)
    for batch_size in (1, 4):  # alone (no padding) and mixed lengths padded to the longest
        got = model.encode(TEXTS, batch_size=batch_size, convert_to_sparse_tensor=False)
        np.testing.assert_allclose(got, reference.numpy(), atol=1e-4, rtol=1e-4)
    torch_model = SparseEncoder(str(folder), device="cpu")
    with pytest.warns(TruncationWarning):  # TEXTS[2] and [5] are cut at 12 tokens on both backends, and reported
        model.encode(TEXTS)
    assert model.last_encode_info.truncated_indices == (2, 5)
    np.testing.assert_allclose(model.encode(TEXTS, batch_size=3).toarray(), dense(torch_model.encode(TEXTS)),
                               atol=1e-4, rtol=1e-4)


def test_output_forms_without_torch_tensors(mlm_copy):
    model = SparseEncoder(str(mlm_copy), backend="onnx", prompts={"query": "query: "})
    reference = splade_reference(mlm_copy, TEXTS).numpy()
    vocab = reference.shape[1]
    one = model.encode(TEXTS[2])
    assert isinstance(one, sp.csr_matrix) and one.shape == (1, vocab)  # SciPy matrices are 2-D
    np.testing.assert_allclose(one.toarray()[0], reference[2], atol=1e-4, rtol=1e-4)
    one_dense = model.encode(TEXTS[2], convert_to_sparse_tensor=False)
    assert isinstance(one_dense, np.ndarray) and one_dense.shape == (vocab,) and one_dense.dtype == np.float32
    full = model.encode(TEXTS, convert_to_sparse_tensor=False)
    assert isinstance(full, np.ndarray) and full.shape == reference.shape
    rows = model.encode(TEXTS, convert_to_tensor=False)
    assert isinstance(rows, list) and all(isinstance(r, sp.csr_matrix) and r.shape == (1, vocab) for r in rows)
    np.testing.assert_allclose(sp.vstack(rows).toarray(), reference, atol=1e-4, rtol=1e-4)
    dense_rows = model.encode(TEXTS[:2], convert_to_tensor=False, convert_to_sparse_tensor=False)
    assert all(isinstance(r, np.ndarray) and r.shape == (vocab,) for r in dense_rows)
    empty = model.encode([])
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    assert model.encode([], convert_to_tensor=False) == []
    torch_model = SparseEncoder(str(mlm_copy), device="cpu", prompts={"query": "query: "})
    np.testing.assert_allclose(model.encode_query(TEXTS).toarray(), dense(torch_model.encode_query(TEXTS)),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unexpected keyword"):
        model.encode(["a"], normalize_embeddings=True)
    assert model.splade_pooling_chunk_size is None  # pooling runs inside the graph


def test_max_active_dims_equals_torch(mlm_copy):
    model = SparseEncoder(str(mlm_copy), backend="onnx", max_active_dims=5)
    torch_model = SparseEncoder(str(mlm_copy), device="cpu", max_active_dims=5)
    got = model.encode(TEXTS, batch_size=4)
    assert (np.diff(got.indptr) <= 5).all()
    np.testing.assert_allclose(got.toarray(), dense(torch_model.encode(TEXTS)), atol=1e-4, rtol=1e-4)
    assert np.diff(model.encode(TEXTS[:1], max_active_dims=2).indptr).tolist() == [2]  # the call's argument wins
    assert model.sparsity(got)["active_dims"] <= 5


def test_int8_is_calibrated_and_close_to_float32(mlm_copy):
    float32 = SparseEncoder(str(mlm_copy), backend="onnx").encode(TEXTS, convert_to_sparse_tensor=False)
    model = SparseEncoder(str(mlm_copy), backend="onnx", compute_dtype="int8")
    assert model.compute_dtype == "int8" and "_int8" in model.engine.graph.name
    report = model.engine.meta["quantization"]
    assert report["precision"] == "int8" and model.engine.meta["kind"] == "sparse"
    got = model.encode(TEXTS, convert_to_sparse_tensor=False)
    cosine = (got * float32).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(float32, axis=1))
    assert cosine.min() > 0.9, cosine


def test_csr_and_other_sparse_pipelines_are_refused_before_any_export(tiny_st_dir, tmp_path):
    folder = copy_model(tiny_st_dir, tmp_path)
    with pytest.raises(ValueError, match=r"CSR \(SparseAutoEncoder\).*backend='torch'"):
        SparseEncoder(str(folder), backend="onnx")
    assert not (folder / "onnx").exists()


# -- inference-free SPLADE (Router) ------------------------------------------------------------------------------
@pytest.fixture()
def router_dir(tiny_mlm_dir, tmp_path):
    transformer = Transformer(str(tiny_mlm_dir), transformer_task="fill-mask")
    torch.manual_seed(3)
    weight = torch.rand(transformer.tokenizer.vocab_size) + 0.5
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(transformer.tokenizer, weight)],
        document_modules=[transformer, SpladePooling("max")], default_route="document")
    SparseEncoder(modules=[router], device="cpu").save(tmp_path / "inference-free")
    return tmp_path / "inference-free"


def test_inference_free_router_routes_equal_torch(router_dir):
    from sentencekit.engines.router_engine import RouterEngine

    model = SparseEncoder(str(router_dir), backend="onnx")
    torch_model = SparseEncoder(str(router_dir), device="cpu")
    assert isinstance(model.engine, RouterEngine)
    assert {r: type(e).__name__ for r, e in model.engine.route_engines.items()} == {
        "query": "SparseStaticEngine", "document": "OnnxEngine"}
    queries = ["refund please", "hello hello world", "the weather in paris " * 30]  # the last one is cut
    with pytest.warns(TruncationWarning):
        got = model.encode_query(queries)
    with pytest.warns(TruncationWarning):
        expected = dense(torch_model.encode_query(queries))
    np.testing.assert_allclose(got.toarray(), expected, atol=1e-6)
    assert got[1].nnz == 2  # "hello" twice counts once
    assert model.engine.max_seq_length_for("query") == torch_model.engine.max_seq_length_for("query") == 64
    docs = ["how do i get a refund", "the cat sat on the mat"]
    np.testing.assert_allclose(model.encode_document(docs).toarray(), dense(torch_model.encode_document(docs)),
                               atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(model.encode(docs).toarray(), model.encode_document(docs).toarray())  # default route
    np.testing.assert_allclose(model.similarity(model.encode_query(queries[:2]), model.encode_document(docs)),
                               torch_model.similarity(torch_model.encode_query(queries[:2]),
                                                      torch_model.encode_document(docs)).numpy(), atol=1e-4)
    assert model.get_embedding_dimension() == torch_model.get_embedding_dimension()


def test_query_weights_from_a_token_json(router_dir):
    query_folder = router_dir / "query_0_SparseStaticEmbedding"
    (query_folder / "model.safetensors").unlink()
    (query_folder / "idf.json").write_text(json.dumps({"refund": 2.5, "hello": 1.5, "not-a-token": 9.0}))
    (query_folder / "config.json").write_text(json.dumps({"frozen": False, "path": "idf.json"}))
    model = SparseEncoder(str(router_dir), backend="onnx")
    row = model.encode_query("hello refund world")
    assert dict(model.decode(row)[0]) == {"refund": 2.5, "hello": 1.5}
    np.testing.assert_array_equal(row.toarray(), dense(SparseEncoder(str(router_dir), device="cpu")
                                                       .encode_query(["hello refund world"])))


# -- reading SciPy / NumPy embeddings (no torch needed) ------------------------------------------------------------
def test_decode_sparsity_and_intersection_on_scipy_equal_torch(mlm_copy):
    model = SparseEncoder(str(mlm_copy), backend="onnx")
    torch_model = SparseEncoder(str(mlm_copy), device="cpu")
    emb, torch_emb = model.encode(TEXTS[:3]), torch_model.encode(TEXTS[:3])

    def close(a, b):
        assert [t for t, _ in a] == [t for t, _ in b]
        np.testing.assert_allclose([w for _, w in a], [w for _, w in b], atol=1e-4, rtol=1e-4)

    for mine, theirs in zip(model.decode(emb, top_k=5), torch_model.decode(torch_emb, top_k=5)):
        close(mine, theirs)
    close(model.decode(emb[1])[0], torch_model.decode(torch_emb[1]))  # a one-row matrix: one list in a list
    close(model.decode(emb.toarray()[1]), torch_model.decode(torch_emb[1]))  # a [vocab] array: the list itself
    with pytest.raises(ValueError, match="top_k"):
        model.decode(emb, top_k=0)
    stats, torch_stats = model.sparsity(emb), torch_model.sparsity(torch_emb)
    assert stats["active_dims"] == torch_stats["active_dims"]
    assert stats["sparsity_ratio"] == pytest.approx(torch_stats["sparsity_ratio"])
    assert SparseEncoder.sparsity(emb.toarray()[0]) == SparseEncoder.sparsity(emb[0])
    assert SparseEncoder.sparsity(np.zeros((0, 5))) == {"active_dims": 0.0, "sparsity_ratio": 1.0}
    listed = model.encode(TEXTS[:3], convert_to_tensor=False)  # a list of [1, vocab] rows reads as the matrix
    assert SparseEncoder.sparsity(listed) == stats and model.decode(listed, top_k=5) == model.decode(emb, top_k=5)
    shared = SparseEncoder.intersection(emb[0], emb)
    assert isinstance(shared, sp.csr_matrix) and shared.shape == emb.shape
    np.testing.assert_allclose(shared.toarray(), dense(SparseEncoder.intersection(torch_emb[0], torch_emb)),
                               atol=1e-4, rtol=1e-4)
    a = np.array([0.0, 2.0, 0.0, 1.0, 3.0], dtype=np.float32)
    b = np.array([[1.0, 0.5, 0.0, 0.0, 2.0], [0.0, 0.0, 4.0, -1.0, 0.0]], dtype=np.float32)
    assert SparseEncoder.intersection(a, b).toarray().tolist() == [[0.0, 1.0, 0.0, 0.0, 6.0], [0.0] * 5]
    with pytest.raises(ValueError, match="one embeddings_1"):
        SparseEncoder.intersection(b, a)


@pytest.mark.parametrize("name", ["dot", "cosine", "euclidean", "manhattan"])
def test_similarity_functions_on_scipy_equal_the_torch_ones(mlm_copy, name):
    model = SparseEncoder(str(mlm_copy), backend="onnx", similarity_fn_name=name, max_active_dims=20)
    torch_model = SparseEncoder(str(mlm_copy), device="cpu", similarity_fn_name=name, max_active_dims=20)
    a, b = model.encode(TEXTS[:3]), model.encode(TEXTS[3:])
    ta, tb = torch_model.encode(TEXTS[:3]), torch_model.encode(TEXTS[3:])
    scores = model.similarity(a, b)
    assert isinstance(scores, np.ndarray) and scores.shape == (3, 3)
    np.testing.assert_allclose(scores, torch_model.similarity(ta, tb).numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(model.similarity(a, b.toarray()), scores, atol=1e-5, rtol=1e-5)  # mixed input
    pairwise = model.similarity_pairwise(a, b)
    assert isinstance(pairwise, np.ndarray) and pairwise.shape == (3,)
    np.testing.assert_allclose(pairwise, torch_model.similarity_pairwise(ta, tb).numpy(), atol=1e-4, rtol=1e-4)
    vectors = model.similarity_pairwise(a.toarray()[0], b.toarray()[0])
    assert np.ndim(vectors) == 0 and vectors == pytest.approx(float(pairwise[0]), abs=1e-4)
    with pytest.raises(ValueError, match="dimension"):
        model.similarity(a, np.ones((1, 3), dtype=np.float32))


def test_manhattan_with_negative_values_matches_dense_math():
    from sentencekit import sparse_arrays

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 30)) * (rng.random((4, 30)) < 0.3)
    b = rng.normal(size=(5, 30)) * (rng.random((5, 30)) < 0.3)
    expected = -np.abs(a[:, None, :] - b[None, :, :]).sum(-1)
    np.testing.assert_allclose(sparse_arrays.manhattan_sim(sp.csr_matrix(a), sp.csr_matrix(b)), expected, atol=1e-5)
    euclid = -np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(sparse_arrays.euclidean_sim(a, sp.csr_matrix(b)), euclid, atol=1e-5)
