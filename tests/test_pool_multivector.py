"""MultiVectorEncoder.encode on a multi-process pool: the rows of one process, in input order, on the CPU (workers
send float32 NumPy rows), for queries (expansion) and documents (skiplist), in every output form; inputs cut at
their task's length are reported once for the whole job."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from sentencekit import MultiVectorEncoder
from sentencekit.pipeline.batching import TruncationWarning

pytestmark = pytest.mark.pool

TEXTS = [f"how do i get a refund for order {i}, " + "please help! " * (i % 7) for i in range(30)]


@pytest.fixture(scope="module")
def model(tiny_mv_dir):
    return MultiVectorEncoder(str(tiny_mv_dir), device="cpu")


@pytest.fixture(scope="module")
def pool(model):
    with model.start_multi_process_pool(["cpu", "cpu"]) as pool:
        yield pool


def test_pool_rows_equal_one_process_in_input_order(model, pool):
    with pytest.warns(TruncationWarning, match="max_seq_length=24"):
        expected = model.encode_document(TEXTS)
    one_process = model.last_encode_info
    with pytest.warns(TruncationWarning) as caught:
        docs = model.encode_document(TEXTS, pool=pool, chunk_size=4)
    assert len(caught) == 1 and model.last_encode_info == one_process  # reported once, as one process does
    assert all(isinstance(d, torch.Tensor) and d.device.type == "cpu" for d in docs)
    for got, want in zip(docs, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.warns(TruncationWarning, match="max_seq_length=12"):  # the expansion length cuts queries
        queries = model.encode_query(TEXTS[:4], pool=pool, convert_to_numpy=True)
    with pytest.warns(TruncationWarning, match="max_seq_length=12"):
        expected_queries = model.encode_query(TEXTS[:4])
    assert all(isinstance(q, np.ndarray) and q.shape == (12, 16) and q.dtype == np.float32 for q in queries)
    for got, want in zip(queries, expected_queries):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_pool_output_forms(model, pool):
    one = model.encode_document("hello world", pool=pool)
    torch.testing.assert_close(one, model.encode_document("hello world"), atol=1e-5, rtol=1e-5)
    assert model.encode_document([], pool=pool) == []
    with pytest.warns(TruncationWarning, match="max_seq_length=12"):  # the expansion length cuts queries
        items = model.encode_query(TEXTS[:3], pool=pool, output_value=None)
    assert len(items) == 3 and "query_expansion_positions" in items[0]
    with pytest.raises(ValueError, match="convert_to_tensor"):
        model.encode(TEXTS, pool=pool, convert_to_tensor=True)


def test_pool_on_the_torch_free_backend(tiny_mv_dir, tmp_path):
    shutil.copytree(tiny_mv_dir, tmp_path / "mv")  # the ONNX export is written beside the model
    onnx = MultiVectorEncoder(str(tmp_path / "mv"), backend="onnx")
    with onnx.start_multi_process_pool(["cpu", "cpu"]) as pool, pytest.warns(TruncationWarning):
        got = onnx.encode_document(TEXTS, pool=pool, chunk_size=5)
    with pytest.warns(TruncationWarning):
        expected = onnx.encode_document(TEXTS)
    assert all(isinstance(g, np.ndarray) for g in got)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-6)
