"""MultiVectorEncoder on the torch-free backend: the transformer and token Dense / Normalize exported to one ONNX
graph, query expansion, the scoring mask and HierarchicalTokenPooling in NumPy / SciPy. Equal to the torch
backend (1e-5) for every layout (native with pooling, min expansion with attention, PyLate, Stanford ColBERT),
NumPy outputs, the same truncation report and fingerprint, pipelines it cannot run refused before any export,
and torch never imported once the graph exists (fresh interpreters). ``compute_dtype="int8"``: calibrated on the
per-token cosine to float32, the same shapes and masks, close token vectors and scores, one cached file per
calibration set."""

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
    int8 = MultiVectorEncoder(str(folder), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 4)
    for side in ("encode_query", "encode_document"):  # queries and documents carry their markers, as calibrated
        assert token_cosines(getattr(int8, side)(TEXTS), getattr(onnx, side)(TEXTS)).min() > 0.99


def test_what_it_cannot_run_is_refused_before_any_export(mv_copy, tmp_path):
    modules = json.loads((mv_copy / "modules.json").read_text())
    modules.insert(1, {"idx": 9, "name": "9", "path": "9_Pooling", "type": "sentence_transformers.models.Pooling"})
    (mv_copy / "9_Pooling").mkdir()
    (mv_copy / "9_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32}))
    (mv_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"Transformer, token Dense / Normalize.*backend='torch'"):
        MultiVectorEncoder(str(mv_copy), backend="onnx")
    assert not (mv_copy / "onnx").exists()


def token_cosines(rows_a, rows_b):
    """Each token's cosine, over all texts: ``[total tokens]``."""
    return np.concatenate([(a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                           for a, b in zip(rows_a, rows_b)])


def no_calibration(*args, **kwargs):
    raise AssertionError("int8 was calibrated again instead of reusing the cached graph")


def test_int8_keeps_shapes_masks_and_scores_and_is_cached_per_calibration_set(mv_copy, monkeypatch):
    from sentencekit.engines import onnx_quantize

    fp32 = MultiVectorEncoder(str(mv_copy), backend="onnx")
    int8 = MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8")
    assert int8.engine.graph.name.endswith("_int8.onnx") and int8.engine.graph.parent == fp32.engine.graph.parent
    report = int8.engine.meta["quantization"]
    assert report["metric"] == "mean per-token cosine over real tokens" and report["calibration_items"] > 100
    assert report["cosine_mean"] >= report["trials"]["all int8"][0] and report["cosine_min"] > 0.99
    assert int8.engine.meta["multivector"] == fp32.engine.meta["multivector"]  # expansion, mask, lengths kept
    assert int8.fingerprint() != fp32.fingerprint()  # an index built on one does not take the other's vectors
    for side in ("encode_query", "encode_document"):
        a, b = getattr(fp32, side)(TEXTS, output_value=None), getattr(int8, side)(TEXTS, output_value=None)
        for x, y in zip(a, b):
            assert y["token_embeddings"].shape == x["token_embeddings"].shape
            assert y["token_embeddings"].dtype == np.float32
            np.testing.assert_array_equal(y["attention_mask"], x["attention_mask"])
        assert token_cosines(getattr(fp32, side)(TEXTS), getattr(int8, side)(TEXTS)).min() > 0.99
    q32, d32 = fp32.encode_query(TEXTS), fp32.encode_document(TEXTS)
    scores = int8.similarity(int8.encode_query(TEXTS), int8.encode_document(TEXTS))
    assert scores.dtype == np.float32 and scores.shape == (len(TEXTS), len(TEXTS))
    np.testing.assert_allclose(scores, fp32.similarity(q32, d32), rtol=0.02)
    pairs = [(TEXTS[0], d) for d in TEXTS]
    np.testing.assert_allclose(int8.predict(pairs), fp32.predict(pairs), rtol=0.02)
    ranking = int8.rank(TEXTS[0], TEXTS, top_k=3)
    assert [r["corpus_id"] for r in ranking][0] == fp32.rank(TEXTS[0], TEXTS, top_k=1)[0]["corpus_id"]
    # calibration runs queries (expanded) and documents as the engine does: the float32 graph gives its rows
    runner = int8.engine._calibration_runner(fp32.engine.graph)
    rows = runner.run(fp32.engine.graph, [("query", TEXTS[2]), ("document", TEXTS[4]), ("query", TEXTS[0])])
    assert [r.shape for r in rows] == [(12, 16), (4, 16), (12, 16)]  # queries expanded to 12 tokens
    for got, want in zip(rows, [q32[2], d32[4], q32[0]]):  # (TEXTS[4] has no punctuation for the skiplist to drop)
        np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(TypeError, match="no torch modules"):  # as on float32: save needs backend='torch'
        int8.save(mv_copy.parent / "saved")

    # a second load reuses the graph; other calibration texts make (and then reuse) their own file
    monkeypatch.setattr(onnx_quantize, "calibrate", no_calibration)
    assert MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8").engine.graph == int8.engine.graph
    with pytest.raises(AssertionError, match="calibrated again"):
        MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 3)
    monkeypatch.undo()
    own = MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 3)
    assert own.engine.graph != int8.engine.graph and own.engine.meta["quantization"]["calibration_items"] == 2 * 18
    monkeypatch.setattr(onnx_quantize, "calibrate", no_calibration)
    again = MultiVectorEncoder(str(mv_copy), backend="onnx", compute_dtype="int8", calibration_texts=TEXTS * 3)
    assert again.engine.graph == own.engine.graph
    assert sorted(p.name.count("_int8") for p in (mv_copy / "onnx").glob("*.onnx")) == [0, 1, 1]


def test_int8_with_hierarchical_token_pooling(tiny_bert_dir, tmp_path):
    transformer = Transformer(str(tiny_bert_dir), document_length=30, query_expansion={"strategy": "fixed",
                                                                                        "length": 12})
    torch.manual_seed(4)
    dense = Dense(32, 8, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(list(string.punctuation)),
                                Normalize("token_embeddings"), HierarchicalTokenPooling(pool_factor=2)],
                       device="cpu").save(tmp_path / "pooled")
    fp32 = MultiVectorEncoder(str(tmp_path / "pooled"), backend="onnx")
    int8 = MultiVectorEncoder(str(tmp_path / "pooled"), backend="onnx", compute_dtype="int8")
    assert int8.engine.poolings == fp32.engine.poolings and int8.engine.poolings
    a, b = fp32.encode_document(TEXTS), int8.encode_document(TEXTS)
    # the cluster count follows the token count; near-equal tokens may still cluster a little differently
    assert [x.shape for x in b] == [x.shape for x in a]
    np.testing.assert_allclose(int8.similarity(int8.encode_query(TEXTS), b),
                               fp32.similarity(fp32.encode_query(TEXTS), a), rtol=0.05)


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
