"""backend="openvino": the ONNX engine's pipeline on OpenVINO's CPU runtime. float32 gives the torch
embeddings; batches equal one-by-one; save() writes sentence-transformers' ``openvino/openvino_model.xml``
+ ``.bin`` and that folder reloads without exporting; a folder holding only a transformer-only IR (as
sentence-transformers / optimum-intel save it) loads; int8 stays close; ov_config / threads; errors.
Every model folder is a private copy (exports are written beside the model)."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from sentencekit import CrossEncoder, SentenceTransformer, SparseEncoder
from sentencekit.engines import choose_backend
from sentencekit.engines.openvino_engine import OpenVinoEngine
from tests.engine_parity import TEXTS, copy_model, cosines

# find_spec, not importorskip: importing openvino here would bypass the telemetry guard the engine imports it with.
# CI installs the openvino extra: a missing one must fail there.
if importlib.util.find_spec("openvino") is None and os.environ.get("CI", "").lower() != "true":
    pytest.skip("openvino is not installed (pip install 'sentencekit[openvino]')", allow_module_level=True)
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")


def no_export(monkeypatch) -> None:
    """Make any ONNX export fail loudly: a load that should reuse files must not export."""
    def refuse(*args, **kwargs):
        raise AssertionError("exported although a saved graph was there")

    monkeypatch.setattr("sentencekit.engines.onnx_export.export_spec", refuse)


@pytest.fixture()
def st_copy(tiny_st_dir, tmp_path):
    return copy_model(tiny_st_dir, tmp_path)


def test_float32_equals_torch_and_batches_equal_one_by_one(st_copy):
    torch_emb = SentenceTransformer(str(st_copy), device="cpu").encode(TEXTS)
    model = SentenceTransformer(str(st_copy), backend="openvino")
    assert isinstance(model.engine, OpenVinoEngine) and model.backend == "openvino" == model.get_backend()
    assert model.engine.graph.suffix == ".onnx" and model.engine.full_pipeline  # the ONNX backend's own export
    # no silent bf16 (OpenVINO's default on CPUs with AVX-512 BF16 / AMX)
    assert model.engine.session.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    emb = model.encode(TEXTS, batch_size=4)  # length-sorted batches: padding in them
    assert emb.dtype == np.float32 and emb.shape == torch_emb.shape
    np.testing.assert_allclose(emb, torch_emb, atol=1e-4)
    one_by_one = np.stack([model.encode(t) for t in TEXTS])
    np.testing.assert_allclose(emb, one_by_one, atol=1e-5)
    assert model.fingerprint() == SentenceTransformer(str(st_copy), device="cpu").fingerprint()
    import pickle  # pool workers get the model pickled: the engine recompiles its graph there

    copy = pickle.loads(pickle.dumps(model))
    assert copy.engine.ov_config == model.engine.ov_config
    np.testing.assert_allclose(copy.encode(TEXTS), emb, atol=1e-6)
    tokens = model.encode(TEXTS[:2], output_value="token_embeddings")
    assert [t.shape[0] for t in tokens] == [len(model.tokenizer.encode([t]).ids[0]) for t in TEXTS[:2]]


def test_reuses_the_onnx_backend_export(st_copy, monkeypatch):
    SentenceTransformer(str(st_copy), backend="onnx")
    no_export(monkeypatch)
    model = SentenceTransformer(str(st_copy), backend="openvino")
    assert model.engine.graph.parent == st_copy / "onnx"


def test_save_writes_openvino_ir_and_reloads_without_export(st_copy, tmp_path, monkeypatch):
    model = SentenceTransformer(str(st_copy), backend="openvino")
    emb = model.encode(TEXTS)
    out = tmp_path / "saved"
    model.save(str(out))
    assert (out / "openvino" / "openvino_model.xml").is_file() and (out / "openvino" / "openvino_model.bin").is_file()
    assert (out / "modules.json").is_file() and not (out / "onnx").exists()
    no_export(monkeypatch)
    again = SentenceTransformer(str(out), backend="openvino")
    assert again.engine.graph == out / "openvino" / "openvino_model.xml" and again.engine.full_pipeline
    np.testing.assert_allclose(again.encode(TEXTS), emb, atol=1e-6)
    assert again.fingerprint() == model.fingerprint()


def export_transformer_only_ir(folder: Path) -> None:
    """``openvino/openvino_model.xml`` as optimum-intel writes it for sentence-transformers: the transformer
    alone, inputs input_ids / attention_mask / token_type_ids, output last_hidden_state; nothing else."""
    import torch

    from sentencekit.engines.openvino_session import require_openvino

    ov = require_openvino()
    auto_model = SentenceTransformer(str(folder), device="cpu")[0].auto_model
    names = ["input_ids", "attention_mask", "token_type_ids"]
    features = {n: torch.ones(2, 5, dtype=torch.long) for n in names}

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = auto_model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    onnx_path = folder / "transformer.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper().eval(), tuple(features[n] for n in names), str(onnx_path), dynamo=False,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "b", 1: "s"} for n in [*names, "last_hidden_state"]}, opset_version=17)
    (folder / "openvino").mkdir()
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(folder / "openvino" / "openvino_model.xml"),
                  compress_to_fp16=False)
    onnx_path.unlink()


def test_folder_with_only_a_transformer_ir_loads_without_export(st_copy, monkeypatch):
    torch_emb = SentenceTransformer(str(st_copy), device="cpu").encode(TEXTS)
    export_transformer_only_ir(st_copy)
    no_export(monkeypatch)
    model = SentenceTransformer(str(st_copy), backend="openvino")
    assert model.engine.graph.name == "openvino_model.xml" and not model.engine.full_pipeline
    assert [p.name for p in model.engine.session.get_outputs()] == ["last_hidden_state"]
    np.testing.assert_allclose(model.encode(TEXTS), torch_emb, atol=1e-4)  # pooling + Normalize in NumPy
    named = SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"file_name": "openvino_model.xml"})
    assert named.engine.graph == model.engine.graph
    assert not (st_copy / "onnx").exists()


def no_nncf(monkeypatch) -> None:
    """Make NNCF unimportable and any quantization fail loudly: a load that should reuse an int8 IR must not
    quantize (None in sys.modules makes `import nncf` raise ImportError)."""
    def refuse(*args, **kwargs):
        raise AssertionError("quantized although an int8 IR was there")

    monkeypatch.setitem(sys.modules, "nncf", None)
    monkeypatch.setattr("sentencekit.engines.openvino_quantize.quantize_static", refuse)


def test_int8_is_an_nncf_static_ir_cached_and_close(st_copy, monkeypatch):
    fp32 = SentenceTransformer(str(st_copy), backend="openvino")
    model = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    graph = model.engine.graph
    assert graph.name.endswith("_ov_int8.xml") and graph.with_suffix(".bin").is_file() and model.compute_dtype == "int8"
    assert graph.parent == st_copy / "onnx" and model.engine.full_pipeline  # beside the float32 export it came from
    assert "FakeQuantize" in {op.get_type_name() for op in model.engine.session.model.get_ops()}
    report = model.engine.meta["quantization"]
    assert report["method"] == "nncf static post-training quantization" and report["preset"] == "mixed"
    from sentencekit.engines.onnx_quantize import default_calibration_texts

    assert report["calibration_items"] == len(default_calibration_texts()) and report["cosine_mean"] > 0.995
    emb = model.encode(TEXTS)
    assert cosines(emb, fp32.encode(TEXTS)).min() > 0.995
    assert model.fingerprint() != fp32.fingerprint()
    assert not list(graph.parent.glob(".ov-int8-*"))  # the temporary folder is gone
    no_nncf(monkeypatch)
    again = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    assert again.engine.graph == graph
    np.testing.assert_allclose(again.encode(TEXTS), emb, atol=1e-6)


def test_int8_save_reloads_without_nncf(st_copy, tmp_path, monkeypatch):
    model = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    emb = model.encode(TEXTS)
    out = tmp_path / "saved"
    model.save(str(out))
    xml = out / "openvino" / "openvino_model_qint8_quantized.xml"
    assert xml.is_file() and xml.with_suffix(".bin").is_file() and not (out / "onnx").exists()
    no_nncf(monkeypatch)
    no_export(monkeypatch)
    again = SentenceTransformer(str(out), backend="openvino", compute_dtype="int8")
    assert again.engine.graph == xml and again.engine.meta["quantization"] == model.engine.meta["quantization"]
    np.testing.assert_allclose(again.encode(TEXTS), emb, atol=1e-6)
    assert again.fingerprint() == model.fingerprint()


def test_sentence_transformers_int8_ir_folder_loads_without_nncf(st_copy, monkeypatch):
    """A folder with sentence-transformers' transformer-only ``openvino_model_qint8_quantized.xml`` runs that
    file for int8 (here a float32 IR under that name: which graph runs is what is checked)."""
    torch_emb = SentenceTransformer(str(st_copy), device="cpu").encode(TEXTS)
    export_transformer_only_ir(st_copy)
    for suffix in (".xml", ".bin"):
        (st_copy / "openvino" / f"openvino_model{suffix}").rename(
            st_copy / "openvino" / f"openvino_model_qint8_quantized{suffix}")
    no_nncf(monkeypatch)
    no_export(monkeypatch)
    model = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    assert model.engine.graph.name == "openvino_model_qint8_quantized.xml" and not model.engine.full_pipeline
    np.testing.assert_allclose(model.encode(TEXTS), torch_emb, atol=1e-4)


def test_int8_without_nncf_says_how_to_install_it(st_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(ImportError, match=r"pip install 'sentencekit\[openvino\]'"):
        SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    assert not list((st_copy / "onnx").glob("*_ov_int8.*"))


def test_int8_calibration_texts_make_another_ir(st_copy):
    default = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8")
    texts = TEXTS * 4
    with pytest.warns(UserWarning, match="static activation ranges on only"):  # few texts: ranges may drift
        own = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8", calibration_texts=texts)
    assert own.engine.graph != default.engine.graph and "_cal" in own.engine.graph.name
    assert own.engine.meta["quantization"]["calibration_items"] == len(texts)
    again = SentenceTransformer(str(st_copy), backend="openvino", compute_dtype="int8", calibration_texts=texts)
    assert again.engine.graph == own.engine.graph


def test_int8_cross_encoder_and_splade(tiny_ce_dir, tiny_mlm_dir, tmp_path):
    folder = copy_model(tiny_ce_dir, tmp_path, "ce")
    pairs = [("how do i get a refund", "refund policy"), ("hello", "the weather in paris today is mild"),
             ("password reset", "to reset your password open settings"), ("a", "b c d")]
    reference = CrossEncoder(str(folder), backend="openvino").predict(pairs)
    model = CrossEncoder(str(folder), backend="openvino", compute_dtype="int8")
    assert model.engine.graph.name.endswith("_ov_int8.xml")
    report = model.engine.meta["quantization"]
    from sentencekit.engines.onnx_quantize import default_calibration_pairs

    assert report["calibration_items"] == len(default_calibration_pairs()) and report["score_cosine"] > 0.995
    np.testing.assert_allclose(model.predict(pairs), reference, atol=0.02)
    mlm = copy_model(tiny_mlm_dir, tmp_path, "mlm")
    dense = SparseEncoder(str(mlm), backend="openvino").encode(TEXTS).toarray()
    sparse = SparseEncoder(str(mlm), backend="openvino", compute_dtype="int8")
    assert sparse.engine.graph.name.endswith("_ov_int8.xml")
    assert cosines(sparse.encode(TEXTS).toarray(), dense).min() > 0.995


def test_threads_ov_config_and_telemetry(st_copy, tmp_path):
    model = SentenceTransformer(str(st_copy), backend="openvino", num_threads=1,
                                model_kwargs={"ov_config": {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "1"}})
    assert model.num_threads == 1
    assert model.engine.ov_config["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert model.engine.session.compiled.get_property("NUM_STREAMS") == 1
    model.num_threads = 2
    assert model.num_threads == 2
    with pytest.raises(ValueError, match="num_threads"):
        model.num_threads = 0
    config = tmp_path / "ov.json"
    config.write_text('{"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}')
    from_file = SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"ov_config": str(config)})
    assert from_file.engine.ov_config["PERFORMANCE_HINT"] == "LATENCY"
    with pytest.raises(ValueError, match="ov_config"):
        SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"ov_config": str(tmp_path / "none.json")})
    # OpenVINO's converter sends a usage event on import unless its telemetry package is hidden
    if os.environ.get("SENTENCEKIT_OPENVINO_TELEMETRY") != "1":
        import openvino.tools.ovc.telemetry_utils as telemetry

        assert telemetry.tm.__name__.endswith("telemetry_stub")


def test_bad_file_name_and_unsupported_models(st_copy):
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"file_name": "missing.xml"})
    (st_copy / "openvino").mkdir()
    (st_copy / "openvino" / "lonely.xml").write_text("<net/>")
    with pytest.raises(FileNotFoundError, match="lonely.bin"):
        SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"file_name": "lonely.xml"})
    (st_copy / "openvino" / "lonely.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="lonely.xml"):
        SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"file_name": "lonely.xml"})
    (st_copy / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.xml\) or an ONNX"):
        SentenceTransformer(str(st_copy), backend="openvino", model_kwargs={"file_name": "weights.txt"})


def test_cross_encoder_and_splade_on_the_same_engine(tiny_ce_dir, tiny_mlm_dir, tmp_path):
    folder = copy_model(tiny_ce_dir, tmp_path, "ce")
    pairs = [("how do i get a refund", "refund policy"), ("hello", "the weather in paris today is mild")]
    reference = CrossEncoder(str(folder), device="cpu").predict(pairs)
    model = CrossEncoder(str(folder), backend="openvino")
    assert isinstance(model.engine, OpenVinoEngine)
    np.testing.assert_allclose(model.predict(pairs), reference, atol=1e-4)
    mlm = copy_model(tiny_mlm_dir, tmp_path, "mlm")
    sparse = SparseEncoder(str(mlm), backend="openvino")
    dense_ref = SparseEncoder(str(mlm), device="cpu").encode(TEXTS, convert_to_tensor=True).to_dense().numpy()
    np.testing.assert_allclose(sparse.encode(TEXTS).toarray(), dense_ref, atol=1e-4, rtol=1e-4)


def test_import_sentencekit_does_not_import_openvino_and_openvino_writes_no_telemetry(tmp_path):
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HOME": str(tmp_path)}
    env.pop("SENTENCEKIT_OPENVINO_TELEMETRY", None)
    code = "import sentencekit, sys; from sentencekit import SentenceTransformer; print('openvino' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
    # a fresh process importing OpenVINO the engine's way: its converter's telemetry (a usage event, a client
    # id and a counter under ~/intel) stays off
    code = ("from sentencekit.engines.openvino_session import ov_core; ov_core(); "
            "import openvino.tools.ovc.telemetry_utils as t; print(t.tm.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().endswith("telemetry_stub") and not (tmp_path / "intel").exists()
    # NNCF (int8) sends a usage event per nncf.quantize through the same package: imported our way, its stub
    if importlib.util.find_spec("nncf") is not None:
        code = ("from sentencekit.engines.openvino_quantize import require_nncf; require_nncf(); "
                "from nncf.telemetry.wrapper import telemetry; print(type(telemetry).__name__)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == "MagicMock" and not (tmp_path / "intel").exists()


def test_auto_picks_openvino_for_float32_where_preferred_and_falls_back(st_copy, tiny_bert_dir, tmp_path,
                                                                        monkeypatch):
    from sentencekit.engines import load_on_backend
    from sentencekit.engines.cpu import CpuFeatures, openvino_preferred

    monkeypatch.setattr("sentencekit.engines.cpu.cpu_features", lambda: CpuFeatures(frozenset({"avx512f"})))
    monkeypatch.setattr("sentencekit.engines.cpu.platform.machine", lambda: "x86_64")
    assert openvino_preferred(None) and openvino_preferred("float32") and not openvino_preferred("int8")
    assert choose_backend("auto", device="cpu") == "openvino"
    # int8 without AVX-512 VNNI stays on ONNX Runtime; with it (and NNCF to make the static int8 IR), OpenVINO
    assert choose_backend("auto", device="cpu", compute_dtype="int8") == "onnx"
    monkeypatch.setattr("sentencekit.engines.cpu.cpu_features",
                        lambda: CpuFeatures(frozenset({"avx512f", "avx512_vnni"})))
    assert choose_backend("auto", device="cpu", compute_dtype="int8") == "openvino"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else find_spec(name, *a))
    assert choose_backend("auto", device="cpu", compute_dtype="int8") == "onnx"
    assert choose_backend("auto", device="cpu") == "openvino"
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr("sentencekit.engines.cpu.cpu_features", lambda: CpuFeatures(frozenset({"avx512f"})))
    assert choose_backend("auto", device="cuda") == "torch"
    assert choose_backend("auto", device="cpu", compute_dtype="bfloat16") == "torch"
    model, backend = load_on_backend(SentenceTransformer, str(st_copy), "auto", device="cpu")
    assert backend == "openvino" and isinstance(model.engine, OpenVinoEngine)
    # a static-embedding model: OpenVINO refuses it, ONNX Runtime (a NumPy lookup) runs it
    from tokenizers import Tokenizer

    from sentencekit.modules import StaticEmbedding

    tokenizer = Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json"))
    static = tmp_path / "static"
    table = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 8))
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, table)], device="cpu").save(static)
    model, backend = load_on_backend(SentenceTransformer, str(static), "auto", device="cpu")
    assert backend == "onnx" and model.engine.backend != "openvino"
    # no AVX-512 (or ARM): ONNX Runtime
    monkeypatch.setattr("sentencekit.engines.cpu.cpu_features", lambda: CpuFeatures(frozenset({"avx2"})))
    assert choose_backend("auto", device="cpu") == "onnx"


@pytest.mark.real_model
def test_minilm_float32_matches_torch(minilm, minilm_dir, tmp_path):
    folder = copy_model(minilm_dir, tmp_path, "minilm")
    texts = [*TEXTS, "A man is playing a guitar.", "Three dogs run across a snowy field near the trees."]
    reference = minilm.encode(texts)
    model = SentenceTransformer(str(folder), backend="openvino")
    assert cosines(model.encode(texts, batch_size=3), reference).min() >= 0.99999
    int8 = SentenceTransformer(str(folder), backend="openvino", compute_dtype="int8")
    assert cosines(int8.encode(texts), reference).min() > 0.98


@pytest.mark.real_model
def test_minilm_int8_keeps_stsb_and_cosine(minilm_dir, tmp_path):
    """NNCF static int8 on the real model: STS-B test Spearman within 0.5 points of float32 (82.03) and mean
    cosine to float32 at least 0.99 on its 2 x 1379 sentences (none of them in the calibration set)."""
    from scipy.stats import spearmanr

    from sentencekit.datasets import load_stsb

    folder = copy_model(minilm_dir, tmp_path, "minilm")
    pairs = load_stsb("test")
    sentences = [p.sentence1 for p in pairs] + [p.sentence2 for p in pairs]
    gold = [p.score for p in pairs]

    def stsb(emb: np.ndarray) -> float:
        return 100 * float(spearmanr(cosines(emb[:len(pairs)], emb[len(pairs):]), gold).statistic)

    fp32 = SentenceTransformer(str(folder), backend="openvino").encode(sentences, batch_size=64)
    int8 = SentenceTransformer(str(folder), backend="openvino", compute_dtype="int8")
    assert int8.engine.meta["quantization"]["cosine_mean"] >= 0.99
    emb = int8.encode(sentences, batch_size=64)
    assert cosines(emb, fp32).mean() >= 0.99
    assert stsb(fp32) - stsb(emb) <= 0.5
