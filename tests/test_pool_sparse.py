"""SparseEncoder.encode on a multi-process pool: the rows of one process, in input order, on the CPU, in every
output form, on the torch and torch-free backends (inference-free SPLADE Routers included); inputs cut at
max_seq_length are reported once for the whole job."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from sentencekit import SparseEncoder
from sentencekit.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer
from sentencekit.pipeline.batching import TruncationWarning

pytestmark = pytest.mark.pool

TEXTS = [f"how do i get a refund for order {i} " + "please help " * (i % 9) for i in range(50)]


@pytest.fixture(scope="module")
def model(tiny_splade_dir):
    return SparseEncoder(str(tiny_splade_dir), device="cpu")


@pytest.fixture(scope="module")
def pool(model):
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        yield pool


def dense(x):
    return x.to_dense() if x.is_sparse else x


def test_pool_rows_equal_one_process_in_input_order(model, pool):
    expected = model.encode(TEXTS)
    got = model.encode(TEXTS, pool=pool, chunk_size=6)  # 9 chunks over 2 workers, texts sorted by length
    assert got.layout == torch.sparse_coo and got.device.type == "cpu" and got.shape == expected.shape
    torch.testing.assert_close(got.to_dense(), expected.to_dense(), atol=1e-5, rtol=1e-5)
    assert int((got.to_dense() != 0).sum(1).max()) <= model.max_active_dims  # the saved cap holds in workers


def test_pool_output_forms_match_one_process(model, pool):
    one = model.encode(TEXTS[7], pool=pool)
    assert one.shape == (model.get_embedding_dimension(),) and one.layout == torch.sparse_coo
    torch.testing.assert_close(one.to_dense(), model.encode(TEXTS[7]).to_dense(), atol=1e-5, rtol=1e-5)
    rows = model.encode(TEXTS[:4], pool=pool, convert_to_tensor=False)
    assert isinstance(rows, list) and len(rows) == 4 and rows[2].dim() == 1
    torch.testing.assert_close(dense(rows[2]), model.encode(TEXTS[2]).to_dense(), atol=1e-5, rtol=1e-5)
    capped = model.encode(TEXTS[:5], pool=pool, convert_to_sparse_tensor=False, max_active_dims=3)
    assert capped.layout == torch.strided and (capped != 0).sum(1).tolist() == [3] * 5
    torch.testing.assert_close(capped, model.encode(TEXTS[:5], convert_to_sparse_tensor=False, max_active_dims=3),
                               atol=1e-5, rtol=1e-5)
    empty = model.encode([], pool=pool)
    assert empty.shape == (0,) and empty.layout == torch.sparse_coo
    assert model.encode([], pool=pool, convert_to_tensor=False) == []
    torch.testing.assert_close(model.encode(sentences=TEXTS[:3], pool=pool).to_dense(),
                               model.encode(TEXTS[:3]).to_dense(), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_active_dims"):
        model.encode(TEXTS, pool=pool, max_active_dims=0)
    with pytest.raises(TypeError, match=r"sentences\[1\] is None"):
        model.encode(["a", None], pool=pool)


def test_truncation_is_reported_once_for_the_whole_job(tiny_splade_dir):
    model = SparseEncoder(str(tiny_splade_dir), device="cpu")
    model.max_seq_length = 8
    long_ones = [i for i, t in enumerate(TEXTS) if len(model.tokenizer(t)["input_ids"]) > 8]
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.encode(TEXTS, pool=pool, chunk_size=5)
    cut = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(cut) == 1 and f"{len(long_ones)} of {len(TEXTS)} inputs" in str(cut[0].message)
    assert cut[0].filename == __file__  # points at the caller's line
    assert list(model.last_encode_info.truncated_indices) == long_ones


def test_device_list_starts_a_pool_for_the_call(model):
    got = model.encode(TEXTS[:10], device=["cpu", "cpu"], chunk_size=3)
    torch.testing.assert_close(got.to_dense(), model.encode(TEXTS[:10]).to_dense(), atol=1e-5, rtol=1e-5)


def test_torch_free_pool_returns_scipy_rows(tiny_splade_dir, tmp_path):
    folder = shutil.copytree(tiny_splade_dir, tmp_path / "model")  # the ONNX export is written beside it
    model = SparseEncoder(str(folder), backend="onnx")
    expected = model.encode(TEXTS)
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        got = model.encode(TEXTS, pool=pool, chunk_size=7)
        one = model.encode(TEXTS[4], pool=pool)
        as_numpy = model.encode(TEXTS[:3], pool=pool, convert_to_sparse_tensor=False)
        empty = model.encode([], pool=pool)
    assert type(got).__name__ == "csr_matrix" and got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.toarray(), expected.toarray(), atol=1e-5)
    assert one.shape == (1, expected.shape[1])
    np.testing.assert_allclose(one.toarray(), expected[4].toarray(), atol=1e-5)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (3, expected.shape[1])
    np.testing.assert_allclose(as_numpy, expected[:3].toarray(), atol=1e-5)
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)


def test_inference_free_router_on_the_torch_free_pool(tiny_mlm_dir, tmp_path):
    transformer = Transformer(str(tiny_mlm_dir), transformer_task="fill-mask")
    torch.manual_seed(3)
    weight = torch.rand(transformer.tokenizer.vocab_size) + 0.5
    router = Router.for_query_document(
        query_modules=[SparseStaticEmbedding(transformer.tokenizer, weight)],
        document_modules=[transformer, SpladePooling("max")], default_route="document")
    SparseEncoder(modules=[router], device="cpu", max_active_dims=12).save(tmp_path / "router")
    model = SparseEncoder(str(tmp_path / "router"), backend="onnx")
    queries, docs = TEXTS[:9], TEXTS[9:30]
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        got_queries = model.encode_query(queries, pool=pool, chunk_size=2)
        got_docs = model.encode_document(docs, pool=pool, chunk_size=4)
    np.testing.assert_allclose(got_queries.toarray(), model.encode_query(queries).toarray(), atol=1e-6)
    np.testing.assert_allclose(got_docs.toarray(), model.encode_document(docs).toarray(), atol=1e-5)
