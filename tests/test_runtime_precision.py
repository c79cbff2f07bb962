"""Compute precisions: int8 (calibrated dynamic quantization on the ONNX backend), bf16 (torch autocast,
only where the CPU runs it fast), and clear refusals / warnings elsewhere; plus the real model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sentencekit import SentenceTransformer
from sentencekit.engines import cpu as cpu_module
from sentencekit.engines.cpu import CpuFeatures, cpu_features
from sentencekit.engines.torch_precision import SlowPrecisionError, SlowPrecisionWarning, resolve_torch_dtype

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")

TEXTS = ["hello world", "how do i get a refund", "the cat sat on the mat", "password reset help please",
         "what is your return policy for a broken item that was delivered late"]


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def no_bf16(monkeypatch):
    monkeypatch.setattr(cpu_module, "cpu_features", lambda: CpuFeatures(frozenset({"avx2"}), "test CPU"))
    import sentencekit.engines.torch_precision as tp

    monkeypatch.setattr(tp, "cpu_features", cpu_module.cpu_features)


def test_cpu_features_read_proc_cpuinfo():
    features = cpu_features()
    assert isinstance(features.flags, frozenset) and isinstance(features.describe(), str)
    assert CpuFeatures(frozenset({"amx_bf16"})).bf16 and not CpuFeatures(frozenset({"avx2"})).bf16
    assert CpuFeatures(frozenset({"avx512_vnni"})).vnni


def test_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch, tiny_st_dir):
    no_bf16(monkeypatch)
    assert resolve_torch_dtype("auto", "cpu") == "float32"
    with pytest.raises(SlowPrecisionError, match="emulate"):
        SentenceTransformer(str(tiny_st_dir), device="cpu", compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="backend='onnx'"):
        resolve_torch_dtype("int8", "cpu")
    import torch

    with pytest.warns(SlowPrecisionWarning, match="slower"):
        SentenceTransformer(str(tiny_st_dir), device="cpu", model_kwargs={"torch_dtype": torch.bfloat16})


def test_auto_picks_bf16_on_bf16_cpus(monkeypatch):
    monkeypatch.setattr(cpu_module, "cpu_features", lambda: CpuFeatures(frozenset({"avx512_bf16"})))
    import sentencekit.engines.torch_precision as tp

    monkeypatch.setattr(tp, "cpu_features", cpu_module.cpu_features)
    assert resolve_torch_dtype("auto", "cpu") == "bfloat16"
    assert resolve_torch_dtype(None, "cpu") == "bfloat16"


def test_int8_calibration_report_on_a_tiny_model(tiny_st_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_st_dir, folder)
    fp32 = SentenceTransformer(str(folder), backend="onnx")
    int8 = SentenceTransformer(str(folder), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 4)
    report = int8.engine.meta["quantization"]
    assert report["precision"] == "int8" and "all int8" in report["trials"]
    assert 0 <= report["float32_weight_share"] <= 0.15 and set(report["sensitivity"]) >= set(report["float32_units"])
    assert report["cosine_mean"] >= report["trials"]["all int8"][0]
    assert cosines(int8.encode(TEXTS), fp32.encode(TEXTS)).mean() > 0.9
    # one cached int8 graph per calibration set: the same texts reuse it, the bundled set has its own
    again = SentenceTransformer(str(folder), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 4)
    assert again.engine.graph == int8.engine.graph
    assert SentenceTransformer(str(folder), backend="onnx", compute_dtype="int8").engine.graph != int8.engine.graph


def test_calibration_sets_are_checked_before_anything_loads(tiny_st_dir, tiny_mlm_dir):
    from sentencekit import SparseEncoder

    with pytest.raises(TypeError, match="not one str"):  # it would calibrate on its characters
        SentenceTransformer(str(tiny_st_dir), backend="onnx", compute_dtype="int8", calibration_texts="a b c")
    with pytest.raises(TypeError, match="calibration item 1"):
        SentenceTransformer(str(tiny_st_dir), backend="onnx", compute_dtype="int8", calibration_texts=["a", 2])
    with pytest.raises(ValueError, match="empty"):
        SentenceTransformer(str(tiny_st_dir), backend="onnx", compute_dtype="int8", calibration_texts=[])
    with pytest.raises(TypeError, match="not one str"):  # SparseEncoder takes the argument too
        SparseEncoder(str(tiny_mlm_dir), backend="onnx", compute_dtype="int8", calibration_texts="x")
    with pytest.warns(UserWarning, match="not used"):  # float32: the set would be silently ignored
        SentenceTransformer(str(tiny_st_dir), calibration_texts=TEXTS)


# -- the real model ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_copy(minilm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("minilm") / "model"
    shutil.copytree(minilm_dir, folder)
    return folder


@pytest.fixture(scope="module")
def long_and_short():
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    docs = [d.text for d in load_corpus(SAMPLE_CORPUS)]
    return TEXTS + docs[:40] + [" ".join(docs[i:i + 6]) for i in range(0, 60, 6)]


@pytest.mark.real_model
def test_minilm_onnx_fp32_is_identical_to_torch(minilm, minilm_copy, long_and_short):
    onnx_model = SentenceTransformer(str(minilm_copy), backend="onnx")
    a = minilm.encode(long_and_short)
    b = onnx_model.encode(long_and_short)
    assert cosines(a, b).min() >= 0.99999
    assert onnx_model.last_encode_info.truncated_indices == minilm.last_encode_info.truncated_indices


@pytest.mark.real_model
def test_minilm_int8_fidelity(minilm, minilm_copy, long_and_short):
    int8 = SentenceTransformer(str(minilm_copy), backend="onnx", compute_dtype="int8")
    cos = cosines(int8.encode(long_and_short), minilm.encode(long_and_short))
    assert cos.mean() >= 0.99 and cos.min() >= 0.97, (cos.mean(), cos.min())
    assert int8.engine.meta["quantization"]["cosine_mean"] >= 0.99


@pytest.mark.skipif(not cpu_features().bf16, reason="this CPU has no fast bf16")
@pytest.mark.real_model
def test_minilm_bf16_on_torch(minilm, minilm_dir, long_and_short):
    bf16 = SentenceTransformer(str(minilm_dir), device="cpu", compute_dtype="auto")
    assert bf16.compute_dtype == "bfloat16"
    out = bf16.encode(long_and_short)
    assert out.dtype == np.float32
    assert cosines(out, minilm.encode(long_and_short)).min() >= 0.999
