"""The ONNX backend for embedders: one exported graph (all pooling modes, prompts, Dense, Normalize) that
gives the torch path's embeddings, cached and reused, read-only folders, transformer-only graphs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from sentencekit import SentenceTransformer
from sentencekit.engines.onnx_engine import OnnxEngine
from sentencekit.modules import Dense, Normalize, Pooling, Transformer
from sentencekit.pipeline.batching import TruncationWarning
from tests.engine_parity import TEXTS, copy_model, cosines

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")

def build_pipeline(tiny_bert_dir: Path, folder: Path, modes, *, include_prompt: bool = True, dense: bool = False,
                   normalize: bool = False) -> Path:
    import torch

    torch.manual_seed(3)
    modules = [Transformer(str(tiny_bert_dir), max_seq_length=24),
               Pooling(32, pooling_mode=modes, include_prompt=include_prompt)]
    width = 32 * (1 if isinstance(modes, str) else len(modes))
    if dense:
        modules.append(Dense(width, 16, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu", prompts={"query": "query: "})
    model.save(folder)
    return folder


def test_fp32_matches_torch_and_export_is_cached(tiny_st_dir, tmp_path, monkeypatch):
    folder = copy_model(tiny_st_dir, tmp_path)
    model = SentenceTransformer(str(folder), backend="onnx")
    assert type(model) is SentenceTransformer and isinstance(model.engine, OnnxEngine)
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    got = model.encode(TEXTS)
    assert got.shape == reference.shape and got.dtype == np.float32
    assert cosines(got, reference).min() >= 0.99999
    files = sorted(p.name for p in (folder / "onnx").iterdir())
    assert len([f for f in files if f.endswith(".onnx")]) == 1 and not [f for f in files if f.startswith(".")]
    assert model.engine.graph.parent == folder / "onnx" and model.engine.meta["kind"] == "embedder"

    import sentencekit.engines.onnx_export as export  # a second load must not export again

    monkeypatch.setattr(export, "export_spec", lambda *a, **k: pytest.fail("exported twice"))
    again = SentenceTransformer(str(folder), backend="onnx")
    assert np.allclose(again.encode(TEXTS), got, atol=1e-6)


@pytest.mark.parametrize("modes", ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken",
                                   ("cls", "max", "mean")])
def test_every_pooling_mode_with_dense_normalize_and_prompt(tiny_bert_dir, tmp_path, modes):
    folder = build_pipeline(tiny_bert_dir, tmp_path / "m", modes, include_prompt=False, dense=True,
                            normalize=True)
    torch_model = SentenceTransformer(str(folder), device="cpu")
    onnx_model = SentenceTransformer(str(folder), backend="onnx")
    assert onnx_model.get_sentence_embedding_dimension() == torch_model.get_sentence_embedding_dimension() == 16
    for kwargs in ({}, {"prompt_name": "query"}, {"prompt": "document: the "}):
        a = torch_model.encode(TEXTS, **kwargs)
        b = onnx_model.encode(TEXTS, **kwargs)
        assert cosines(a, b).min() >= 0.99999, kwargs
        assert np.abs(a - b).max() < 1e-4
    # include_prompt=False really drops the prompt's tokens (a different prompt of equal token count
    # changes nothing for mean-like pooling of the rest)
    assert "prompt_length" in onnx_model.session.get_inputs()[-1].name


def test_encode_options_match_torch(tiny_st_dir, tmp_path):
    folder = copy_model(tiny_st_dir, tmp_path)
    t = SentenceTransformer(str(folder), device="cpu")
    o = SentenceTransformer(str(folder), backend="onnx")
    assert o.encode("hello world").shape == (32,)
    a = t.encode(TEXTS, truncate_dim=8, normalize_embeddings=True)
    b = o.encode(TEXTS, truncate_dim=8, normalize_embeddings=True)
    assert b.shape == (len(TEXTS), 8) and np.allclose(a, b, atol=1e-5)
    for precision in ("int8", "uint8", "binary", "ubinary"):
        assert o.encode(TEXTS, precision=precision).dtype == t.encode(TEXTS, precision=precision).dtype
    tokens_t = t.encode(TEXTS, output_value="token_embeddings")
    tokens_o = o.encode(TEXTS, output_value="token_embeddings")
    assert [x.shape for x in tokens_o] == [tuple(x.shape) for x in tokens_t]
    assert all(np.allclose(x.numpy(), y, atol=1e-4) for x, y in zip(tokens_t, tokens_o))
    assert o.encode([]).shape == (0, 32)
    scores = o.similarity(b[:2], b)
    assert scores.shape == (2, len(TEXTS)) and np.allclose(scores, t.similarity(a[:2], a).numpy(), atol=1e-5)
    assert np.allclose(o.similarity_pairwise(b, b), 1.0, atol=1e-5)
    assert o.encode_query(["q"]).shape == o.encode_document(["d"]).shape == (1, 32)
    with pytest.raises(ValueError, match="unexpected keyword"):
        o.encode(TEXTS, bogus=1)
    with pytest.raises(ValueError, match="CPU"):
        o.encode(TEXTS, device="cuda")


def test_truncation_is_reported_like_torch(tiny_st_dir, tmp_path):
    folder = copy_model(tiny_st_dir, tmp_path)
    o = SentenceTransformer(str(folder), backend="onnx")
    long = " ".join(["refund"] * 200)
    with pytest.warns(TruncationWarning, match="1 of 2 inputs"):
        o.encode(["short", long])
    assert o.last_encode_info.truncated_indices == (1,) and o.last_encode_info.max_seq_length == 48
    o.max_seq_length = 16
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        o.encode(["short", long])
    assert o.last_encode_info.max_seq_length == 16
    with pytest.raises(ValueError, match="position embeddings"):
        o.max_seq_length = 10_000


def test_read_only_model_folder_exports_to_sentencekit_home(tiny_st_dir, tmp_path):
    folder = copy_model(tiny_st_dir, tmp_path)
    (folder / "onnx").write_text("not a folder: nothing can be written beside the model")
    model = SentenceTransformer(str(folder), backend="onnx")
    assert model.engine.graph.parent == tmp_path / "sentencekit-home" / "onnx"
    assert SentenceTransformer(str(folder), backend="onnx").engine.graph == model.engine.graph


def test_changed_weights_get_a_new_export(tiny_st_dir, tmp_path):
    import torch

    folder = copy_model(tiny_st_dir, tmp_path)
    first = SentenceTransformer(str(folder), backend="onnx")
    model = SentenceTransformer(str(folder), device="cpu")
    with torch.no_grad():
        model[0].auto_model.embeddings.word_embeddings.weight.mul_(2)
    model.save(folder)
    second = SentenceTransformer(str(folder), backend="onnx")
    assert second.engine.graph != first.engine.graph
    assert cosines(second.encode(TEXTS), model.encode(TEXTS)).min() >= 0.99999


def test_transformer_only_graph_as_sentence_transformers_exports_it(tiny_bert_dir, tmp_path):
    """``onnx/model.onnx`` with a last_hidden_state output (optimum's layout): pooling, Dense and
    Normalize then run in NumPy, and nothing is exported."""
    import torch

    folder = build_pipeline(tiny_bert_dir, tmp_path / "m", ("mean", "max"), dense=True, normalize=True)
    torch_model = SentenceTransformer(str(folder), device="cpu")
    auto_model = torch_model[0].auto_model
    features = torch_model.tokenize(["hello world", "a longer text here"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    (folder / "onnx").mkdir()

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = auto_model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper().eval(), tuple(features[n] for n in names), str(folder / "onnx" / "model.onnx"),
                          dynamo=False, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "b", 1: "s"} for n in [*names, "last_hidden_state"]}, opset_version=17)
    model = SentenceTransformer(str(folder), backend="onnx")
    assert model.engine.graph.name == "model.onnx" and not model.engine.full_pipeline
    assert cosines(model.encode(TEXTS), torch_model.encode(TEXTS)).min() >= 0.99999
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == ["model.onnx"]
    chosen = SentenceTransformer(str(folder), backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"})
    assert chosen.engine.graph == model.engine.graph


def test_threads_backend_and_dtype_arguments(tiny_st_dir, tmp_path, monkeypatch):
    folder = copy_model(tiny_st_dir, tmp_path)
    model = SentenceTransformer(str(folder), backend="onnx", num_threads=1)
    assert model.num_threads == 1
    model.num_threads = 2
    assert model.num_threads == 2
    with pytest.raises(ValueError, match="num_threads"):
        model.num_threads = 0
    with pytest.raises(ValueError, match="Unknown backend"):
        SentenceTransformer(str(folder), backend="tensorrt")
    with pytest.raises(ValueError, match="bf16"):
        SentenceTransformer(str(folder), backend="onnx", compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="modules"):
        SentenceTransformer(modules=[Normalize()], backend="onnx")
    spin_key = "session.intra_op.allow_spinning"  # idle threads sleep unless SENTENCEKIT_ORT_SPIN=1 (onnx_session.py)
    assert model.engine.session.get_session_options().get_session_config_entry(spin_key) == "0"
    monkeypatch.setenv("SENTENCEKIT_ORT_SPIN", "1")
    model.num_threads = 1  # rebuilds the session
    assert model.engine.session.get_session_options().get_session_config_entry(spin_key) == "1"
    torch_model = SentenceTransformer(str(folder), device="cpu", num_threads=1)
    import torch

    assert torch.get_num_threads() == 1 and torch_model.num_threads == 1
    torch.set_num_threads(2)


def test_unsupported_pipeline_is_refused_clearly(tmp_path):
    from sentencekit.engines.onnx_export import UnsupportedModelError
    from sentencekit.spec import read_spec

    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", '
                                         '"type": "sentence_transformers.models.StaticEmbedding"}]')
    assert not read_spec(folder).runs_without_torch
    assert issubclass(UnsupportedModelError, ValueError)


def test_model_without_token_type_ids(tmp_path):
    """DistilBERT takes no token_type_ids: the graph has only the inputs the model reads."""
    import inspect

    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    from tests.conftest import write_vocab

    hf = tmp_path / "distil"
    hf.mkdir()
    vocab = write_vocab(hf)
    arg = "vocab" if "vocab" in inspect.signature(DistilBertTokenizerFast.__init__).parameters else "vocab_file"
    tokenizer = DistilBertTokenizerFast(**{arg: str(vocab)}, do_lower_case=True, model_max_length=64)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64)
    DistilBertModel(config).eval().save_pretrained(str(hf))
    tokenizer.save_pretrained(str(hf))
    folder = tmp_path / "st"
    SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=32), Pooling(32, "mean")],
                        device="cpu").save(folder)
    onnx_model = SentenceTransformer(str(folder), backend="onnx")
    assert onnx_model.engine.meta["inputs"] == ["input_ids", "attention_mask"]
    a = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    assert cosines(a, onnx_model.encode(TEXTS)).min() >= 0.99999


def test_tensor_and_dict_outputs(tiny_st_dir, tmp_path):
    import torch

    folder = copy_model(tiny_st_dir, tmp_path)
    model = SentenceTransformer(str(folder), backend="onnx")
    tensor = model.encode(TEXTS[:2], convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, 32)
    rows = model.encode(TEXTS[:2], convert_to_numpy=False)
    assert isinstance(rows, list) and rows[0].shape == (32,)
    full = model.encode(TEXTS[:2], output_value=None)
    assert set(full[0]) == {"sentence_embedding", "token_embeddings"}
    assert np.allclose(full[1]["sentence_embedding"], model.encode(TEXTS[1]), atol=1e-6)


def test_loading_kwargs_name_their_own_export():
    from sentencekit.engines.onnx_artifacts import export_variant

    plain = {"trust_remote_code": False, "model_kwargs": None, "tokenizer_kwargs": None, "config_kwargs": None}
    assert export_variant("embedder", plain) == "embedder"
    # file_name / dtype choose files and precisions of the ONNX backend: the float32 export is shared
    assert export_variant("embedder", {**plain, "model_kwargs": {"file_name": "onnx/x.onnx"}}) == "embedder"
    assert export_variant("embedder", {**plain, "config_kwargs": {"hidden_dropout_prob": 0.0}}) != "embedder"


def test_unknown_module_is_refused_before_export(tiny_st_dir, tmp_path):
    """A pipeline the ONNX backend cannot express is refused by name, before torch loads it."""
    import json

    folder = copy_model(tiny_st_dir, tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "9_LayerNorm",
                    "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "9_LayerNorm").mkdir()
    with pytest.raises(ValueError, match=r"exports Transformer -> Pooling -> Dense -> Normalize.*'LayerNorm'\]"):
        SentenceTransformer(str(folder), backend="onnx")
