"""CrossEncoder on the ONNX backend: the same scores as the torch path (activation in NumPy), rank,
multi-label softmax, truncation report, int8."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sentencekit import CrossEncoder
from sentencekit.engines.onnx_engine import OnnxEngine

pytest.importorskip("onnxruntime")

PAIRS = [
    ("how do i get a refund", "refund policy please"),
    ("hello", "world"),
    ("the cat sat on the mat", "the dog sat"),
    ("password reset", "login help for my account password reset please thanks"),
]


@pytest.fixture()
def ce_folder(tiny_ce_dir, tmp_path):
    folder = tmp_path / "ce"
    shutil.copytree(tiny_ce_dir, folder)
    return folder


def test_predict_and_rank_match_torch(ce_folder):
    torch_ce = CrossEncoder(str(ce_folder), device="cpu")
    onnx_ce = CrossEncoder(str(ce_folder), backend="onnx")
    assert type(onnx_ce) is CrossEncoder and isinstance(onnx_ce.engine, OnnxEngine)
    expected = torch_ce.predict(PAIRS)
    got = onnx_ce.predict(PAIRS, batch_size=3)
    assert got.shape == (4,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(got) > 1e-3
    assert isinstance(onnx_ce.predict(PAIRS[0]), np.floating)
    identity = onnx_ce.predict(PAIRS, activation_fn=lambda x: x)
    np.testing.assert_allclose(identity, torch_ce.predict(PAIRS, activation_fn=__import__("torch").nn.Identity()),
                               atol=1e-4)
    docs = [b for _, b in PAIRS]
    ranked_onnx = onnx_ce.rank("refund", docs, top_k=3, return_documents=True)
    ranked_torch = torch_ce.rank("refund", docs, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in ranked_onnx] == [r["corpus_id"] for r in ranked_torch]
    assert ranked_onnx[0]["text"] == docs[ranked_onnx[0]["corpus_id"]]
    with pytest.raises(TypeError, match="single string"):
        onnx_ce.rank("q", "not a list")


def test_multi_label_softmax(tiny_bert_dir, tmp_path):
    torch_ce = CrossEncoder(str(tiny_bert_dir), num_labels=3, device="cpu")
    torch_ce.untrained_head = None  # opt in: the random 3-label head stands in for a trained one
    folder = tmp_path / "ce3"
    torch_ce.save(folder)
    torch_ce = CrossEncoder(str(folder), device="cpu")
    onnx_ce = CrossEncoder(str(folder), backend="onnx")
    assert onnx_ce.num_labels == 3
    got = onnx_ce.predict(PAIRS, apply_softmax=True)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, torch_ce.predict(PAIRS, apply_softmax=True), atol=1e-5)
    with pytest.raises(ValueError, match="num_labels"):
        onnx_ce.rank("q", ["a"])


def test_truncation_and_max_length(ce_folder):
    onnx_ce = CrossEncoder(str(ce_folder), backend="onnx", max_length=16)
    long = " ".join(["refund"] * 40)
    with pytest.warns(UserWarning, match="1 of 2 inputs"):
        onnx_ce.predict([("q", "short"), ("q", long)])
    assert onnx_ce.last_predict_info.truncated_indices == (1,) and onnx_ce.max_length == 16


def test_int8_reranker_keeps_the_ranking_close(ce_folder):
    fp32 = CrossEncoder(str(ce_folder), backend="onnx")
    int8 = CrossEncoder(str(ce_folder), backend="onnx", compute_dtype="int8")
    assert int8.engine.graph != fp32.engine.graph and int8.engine.meta["quantization"]["precision"] == "int8"
    a, b = fp32.predict(PAIRS), int8.predict(PAIRS)
    assert np.abs(a - b).max() < 0.1
