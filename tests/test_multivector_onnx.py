"""MultiVectorEncoder on the torch-free backend: the transformer and token Dense / Normalize exported to one ONNX
graph, query expansion, the scoring mask and HierarchicalTokenPooling in NumPy / SciPy. Equal to the torch
backend (1e-5) for every layout (native with pooling, min expansion with attention, PyLate, Stanford ColBERT),
NumPy outputs, the same truncation report and fingerprint, pipelines it cannot run refused before any export,
and torch never imported once the graph exists (fresh interpreters)."""

from __future__ import annotations

import json
import shutil
import string

import numpy as np
import pytest
import torch

from sentencekit import MultiVectorEncoder
from sentencekit.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer
from sentencekit.pipeline.batching import TruncationWarning
from tests.multivector_folders import TEXTS, build_pylate_folder, build_stanford_folder
from tests.test_runtime_torch_free import run_fresh

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")


def assert_same(onnx_rows, torch_rows, atol=1e-5):
    assert len(onnx_rows) == len(torch_rows)
    for a, b in zip(onnx_rows, torch_rows):
        assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.numpy(), atol=atol, rtol=atol)


def both(folder):
    return MultiVectorEncoder(str(folder), backend="onnx"), MultiVectorEncoder(str(folder), device="cpu")


def check_equal(onnx, torch_model, texts=TEXTS):
    for side in ("encode_query", "encode_document"):
        assert_same(getattr(onnx, side)(texts, batch_size=4), getattr(torch_model, side)(texts))
    scores = onnx.similarity(onnx.encode_query(texts), onnx.encode_document(texts))
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, torch_model.similarity(torch_model.encode_query(texts),
                                                              torch_model.encode_document(texts)).numpy(), atol=1e-4)


@pytest.fixture()
def mv_copy(tiny_mv_dir, tmp_path):
    folder = tmp_path / "mv"
    shutil.copytree(tiny_mv_dir, folder)
    return folder


def test_onnx_equals_torch_with_the_same_outputs_report_and_fingerprint(mv_copy):
    onnx, torch_model = both(mv_copy)
    assert onnx.backend == "onnx"
    with pytest.raises(TypeError, match="no torch modules"):
        onnx.network  # noqa: B018
    check_equal(onnx, torch_model)
    assert len(list((mv_copy / "onnx").glob("sentencekit_*.onnx"))) == 1
    assert onnx.fingerprint() == torch_model.fingerprint() and onnx.get_embedding_dimension() == 16
    one = onnx.encode_document("hello world")
    assert isinstance(one, np.ndarray) and one.shape == (4, 16)
    assert onnx.encode_document([]) == []
    items = onnx.encode_query(["hello"], output_value=None)[0]
    assert items["attention_mask"].dtype == bool and items["attention_mask"].all()
    assert int(items["query_expansion_positions"].sum()) == 12 - 3
    long = ["hello", "the cat sat on the mat " * 8]
    with pytest.warns(TruncationWarning, match="max_seq_length=24"):
        onnx.encode_document(long)
    report = onnx.last_encode_info
    with pytest.warns(TruncationWarning):
        torch_model.encode_document(long)
    assert report == torch_model.last_encode_info
    per_call = HierarchicalTokenPooling(pool_factor=2)
    assert_same(onnx.encode_document(TEXTS, token_pooling=per_call),
                torch_model.encode_document(TEXTS, token_pooling=per_call))
    onnx.similarity_fn_name = "meanmaxsim"
    q, d = onnx.encode_query(TEXTS[:2]), onnx.encode_document(TEXTS)
    np.testing.assert_allclose(onnx.similarity(q, d), torch_model.similarity(
        [torch.from_numpy(x) for x in q], [torch.from_numpy(x) for x in d], length_normalize=True).numpy(), atol=1e-5)
    # a second load reuses the export
    assert MultiVectorEncoder(str(mv_copy), backend="onnx").engine.graph == onnx.engine.graph


def test_pooling_module_and_min_expansion_with_attention(tiny_bert_dir, tmp_path):
    transformer = Transformer(str(tiny_bert_dir), query_length=20, document_length=30,
                              query_expansion={"strategy": "min", "attend": True, "length": 9})
    torch.manual_seed(3)
    dense = Dense(32, 8, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    model = MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(list(string.punctuation)),
                                        Normalize("token_embeddings"), HierarchicalTokenPooling(pool_factor=1.5)],
                               device="cpu")
    model.save(tmp_path / "pooled")
    check_equal(*both(tmp_path / "pooled"))


@pytest.mark.parametrize("layout", ["pylate", "stanford"])
def test_colbert_checkpoints_of_other_tools(layout, tmp_path):
    folder = (build_pylate_folder if layout == "pylate" else build_stanford_folder)(tmp_path / layout)
    onnx, torch_model = both(folder)
    check_equal(onnx, torch_model)
    marker = "[Q] " if layout == "pylate" else "[unused0]"  # the registered marker is in the exported tokenizer
    assert onnx.tokenizer.backend.encode(marker + "refund", add_special_tokens=False).tokens == [marker, "refund"]


def test_what_it_cannot_run_is_refused_before_any_export(mv_copy, tmp_path):
    with pytest.raises(ValueError, match="int8"):
        MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8")
    modules = json.loads((mv_copy / "modules.json").read_text())
    modules.insert(1, {"idx": 9, "name": "9", "path": "9_Pooling", "type": "sentence_transformers.models.Pooling"})
    (mv_copy / "9_Pooling").mkdir()
    (mv_copy / "9_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32}))
    (mv_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"Transformer, token Dense / Normalize.*backend='torch'"):
        MultiVectorEncoder(str(mv_copy), backend="onnx")
    assert not (mv_copy / "onnx").exists()


@pytest.mark.slow
def test_onnx_path_never_imports_torch(tiny_bert_dir, tmp_path):
    transformer = Transformer(str(tiny_bert_dir), document_length=24, query_expansion={"strategy": "fixed",
                                                                                        "length": 12})
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(list(string.punctuation)),
                                Normalize("token_embeddings"), HierarchicalTokenPooling(pool_factor=2)],
                       device="cpu").save(tmp_path / "model")
    code = f"""
import json, sys
from sentencekit import MultiVectorEncoder
from sentencekit.late_interaction import maxsim
model = MultiVectorEncoder({str(tmp_path / "model")!r}, backend="onnx")
q = model.encode_query(["how do i get a refund", "hello"])
d = model.encode_document(["refunds take five days, sorry!", "the cat sat on the mat", "hello world"])
scores = model.similarity(q, d)
print(json.dumps({{"q": [list(x.shape) for x in q], "d": [list(x.shape) for x in d], "scores": list(scores.shape),
                   "same": bool((abs(maxsim(q, d) - scores) < 1e-6).all()),
                   "loaded": sorted(m for m in ("torch", "transformers") if m in sys.modules)}}))
"""
    first = run_fresh(code, tmp_path / "home")  # exports: torch is allowed here
    second = run_fresh(code, tmp_path / "home")
    assert second == {**first, "loaded": []}
    assert second["q"] == [[12, 16], [12, 16]] and second["scores"] == [2, 3] and second["same"]
