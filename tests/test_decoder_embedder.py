"""Decoder (LLM) embedding models: Qwen2 / Qwen3 / Llama / Mistral / Gemma folders as sentence-transformers 6.2
loads them (last-token pooling, the tokenizer's own padding side and EOS), left padding in every pooling mode on
torch, NumPy and ONNX, instruction prompts, Matryoshka, bf16, the ONNX backend, and the saved layout.

The folders are tiny random models with Qwen's real tokenizer (``tests/decoder_folders.py``); parity with
sentence-transformers itself is ``benchmarks/st_compat.py decoder``'s."""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer
from sentencekit.engines.cpu import cpu_features
from sentencekit.engines.fast_tokenizer import FastTokenizer
from sentencekit.engines.numpy_ops import pool
from sentencekit.modules import Normalize, Pooling, Transformer
from sentencekit.modules.pooling import POOLING_MODES, pool_tokens
from sentencekit.spec.decoder_config import default_pooling_mode, unsupported_attention_settings
from sentencekit.spec.model_spec import read_spec
from tests.decoder_folders import (
    DECODER_ARCHS,
    DECODER_TEXTS,
    QWEN3_QUERY_PROMPT,
    build_tiny_decoder,
    decoder_test_marks,
    write_prompts,
)

pytestmark = decoder_test_marks()
PROMPTS = {"query": QWEN3_QUERY_PROMPT, "document": ""}
EOS_ID = 151643
#: every text in one padded batch (no token budget splitting it)
ONE_BATCH = {"batch_size": len(DECODER_TEXTS), "max_batch_tokens": 100_000}


@pytest.fixture(scope="session")
def decoders(tmp_path_factory) -> dict[str, object]:
    """One plain ``*ForCausalLM`` folder per architecture: left padding, EOS appended by the post-processor."""
    root = tmp_path_factory.mktemp("decoders")
    return {arch: build_tiny_decoder(root / arch, arch, append_eos=True, padding_side="left")
            for arch in DECODER_ARCHS}


@pytest.fixture(scope="session")
def qwen3_right(tmp_path_factory):
    """A Qwen3 folder padding on the right and appending no EOS."""
    return build_tiny_decoder(tmp_path_factory.mktemp("qwen3-right") / "m", "qwen3", append_eos=False,
                              padding_side="right")


@pytest.fixture(scope="session")
def loaded(decoders) -> dict[str, tuple[SentenceTransformer, list[str]]]:
    """Each folder loaded with Qwen3-Embedding-style prompts, with the warnings its load gave."""
    out = {}
    for arch, folder in decoders.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = SentenceTransformer(str(folder), device="cpu", prompts=PROMPTS)
        out[arch] = (model, [str(w.message) for w in caught])
    return out


@pytest.fixture(scope="session")
def qwen3_saved(loaded, tmp_path_factory):
    """The Qwen3 model saved: the layout decoder embedders are published in (Qwen3-Embedding's: modules.json,
    last-token Pooling, the instruction prompts in config_sentence_transformers.json)."""
    folder = tmp_path_factory.mktemp("qwen3-saved") / "m"
    loaded["qwen3"][0].save(folder)
    return folder


@pytest.fixture(scope="session")
def models(loaded) -> dict[str, SentenceTransformer]:
    return {arch: model for arch, (model, _) in loaded.items()}


def one_by_one(model, texts, **kwargs) -> np.ndarray:
    return np.stack([model.encode(t, **kwargs) for t in texts])


def set_padding_side(model, side: str):
    model.tokenizer.padding_side = side
    return model


# -- loading a plain folder ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", DECODER_ARCHS)
def test_plain_causal_lm_folder_gets_last_token_pooling(decoders, loaded, arch):
    model, caught = loaded[arch]
    assert any("No sentence-transformers model found" in w and "last-token pooling" in w for w in caught), caught
    transformer, pooling = list(model)  # no Normalize: 6.2 adds none
    assert isinstance(transformer, Transformer) and isinstance(pooling, Pooling)
    assert pooling.pooling_modes == ("lasttoken",)
    assert type(transformer.auto_model).__name__.endswith("Model")  # the base model, not *ForCausalLM
    assert "lm_head" not in dict(transformer.auto_model.named_parameters())
    assert model.tokenizer.padding_side == "left"  # the saved side, not forced
    assert model.get_sentence_embedding_dimension() == 32
    assert read_spec(decoders[arch]).pooling_modes == ("lasttoken",)  # what the ONNX path reads


def test_right_padding_side_is_kept(qwen3_right):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(str(qwen3_right), device="cpu")
    assert model.tokenizer.padding_side == "right"


def test_bidirectional_llm_gets_mean_pooling(decoders, tmp_path):
    folder = shutil.copytree(decoders["qwen3"], tmp_path / "bidirectional")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "is_causal": False}))
    assert read_spec(folder).pooling_modes == ("mean",)
    with pytest.warns(UserWarning, match="mean pooling"):
        model = SentenceTransformer(str(folder), device="cpu")
    assert model[1].pooling_modes == ("mean",)


@pytest.mark.parametrize(("config", "mode"), [
    ({"architectures": ["LlamaForCausalLM"]}, "lasttoken"),
    ({"architectures": ["LlamaForCausalLM"], "is_causal": True}, "lasttoken"),
    ({"architectures": ["LlamaForCausalLM"], "is_causal": False}, "mean"),
    ({"architectures": ["BertModel"]}, "mean"),
    ({"architectures": ["MistralModel", "MistralForCausalLM"]}, "mean"),  # 6.2 reads the first one only
    ({}, "mean"),
])
def test_default_pooling_rule(config, mode):
    assert default_pooling_mode(config) == mode


def test_bidirectional_settings_warn_on_old_transformers():
    both = {"use_bidirectional_attention": True, "text_config": {"is_causal": False}}
    assert len(unsupported_attention_settings(both, "4.56.1")) == 2
    only_causal = unsupported_attention_settings(both, "5.1.0")
    assert len(only_causal) == 1 and "`is_causal=False`" in only_causal[0] and "transformers>=5.2.0" in only_causal[0]
    assert unsupported_attention_settings(both, "5.2.0") == []
    assert unsupported_attention_settings({"is_causal": True, "use_bidirectional_attention": False}, "4.0.0") == []


def test_transformer_warns_when_transformers_would_ignore_is_causal(decoders, tmp_path, monkeypatch):
    import transformers

    folder = shutil.copytree(decoders["qwen3"], tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "is_causal": False}))
    monkeypatch.setattr(transformers, "__version__", "5.1.0")
    with pytest.warns(UserWarning, match=r"is_causal=False.*transformers 5\.1\.0"):
        Transformer(str(folder))


# -- left padding: batch == one by one -------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("arch", DECODER_ARCHS)
def test_batch_equals_one_by_one(models, arch, side):
    """No position ids are passed: under left padding transformers numbers a padded row's tokens from the first
    (pad) column, but these five architectures use rotary embeddings, whose attention scores depend on relative
    positions only, so the shift changes nothing (measured: 5e-7 to 8e-7, fp32)."""
    model = set_padding_side(models[arch], side)
    try:
        batch = model.encode(DECODER_TEXTS, **ONE_BATCH)
        lengths = [len(model.tokenizer(t)["input_ids"]) for t in DECODER_TEXTS]
        assert len(set(lengths)) > 2  # the batch is padded
        assert np.isfinite(batch).all()
        assert np.abs(batch - one_by_one(model, DECODER_TEXTS)).max() < 1e-5
    finally:
        set_padding_side(model, "left")


@pytest.mark.parametrize("include_prompt", [True, False])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_every_pooling_mode_ignores_left_padding(models, mode, include_prompt):
    """The classic left-padding bug: each mode must give a padded row what the text gives alone."""
    transformer = models["qwen3"][0]
    model = SentenceTransformer(modules=[transformer, Pooling(32, mode, include_prompt=include_prompt)],
                                prompts=PROMPTS, device="cpu")
    for side in ("left", "right"):
        set_padding_side(model, side)
        batch = model.encode_query(DECODER_TEXTS, **ONE_BATCH)
        assert np.abs(batch - one_by_one(model, DECODER_TEXTS, prompt_name="query")).max() < 1e-5, side
    set_padding_side(model, "left")


def _padded(rows: list[torch.Tensor], side: str, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width, rows[0].shape[1]), fill)
    mask = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, row in enumerate(rows):
        where = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        tokens[i, where], mask[i, where] = row, 1
    return tokens, mask


@pytest.mark.parametrize("prompt_length", [None, 2])
def test_pooling_math_never_reads_padded_positions(prompt_length):
    """NaN (or any garbage) at padded positions, as left-padded causal attention may leave there: every mode on
    torch and in NumPy gives each row what the row gives unpadded."""
    torch.manual_seed(0)
    rows = [torch.randn(n, 4) for n in (3, 7, 1, 5)]
    modes = POOLING_MODES
    alone = torch.cat([pool_tokens(r[None], torch.ones(1, len(r), dtype=torch.int64), modes,
                                   prompt_length=prompt_length) for r in rows])
    for side in ("left", "right"):
        tokens, mask = _padded(rows, side, float("nan"))
        torch_rows = pool_tokens(tokens, mask, modes, prompt_length=prompt_length)
        numpy_rows = pool(tokens.numpy(), mask.numpy(), modes, prompt_length)
        assert torch.isfinite(torch_rows).all() and np.isfinite(numpy_rows).all()
        assert torch.allclose(torch_rows, alone, atol=1e-6), side
        assert np.allclose(numpy_rows, alone.numpy(), atol=1e-6), side


def test_pooling_math_by_hand_with_prompt_and_left_padding():
    """weightedmean weighs from the first real token (prompt included, as sentence-transformers 6.2 does);
    lasttoken of a row left with nothing is zeros."""
    row = torch.arange(12, dtype=torch.float32).view(4, 3)  # 4 real tokens
    tokens, mask = _padded([row, torch.ones(6, 3)], "left", float("nan"))
    got = pool_tokens(tokens, mask, ("weightedmean", "lasttoken", "cls"), prompt_length=1)[0]
    weights = torch.tensor([0.0, 2.0, 3.0, 4.0])  # positions 1..4, the prompt's weight dropped
    expected = torch.cat([(row * weights[:, None]).sum(0) / weights.sum(), row[-1], row[1]])
    assert torch.allclose(got, expected)
    empty = pool_tokens(tokens, mask, ("lasttoken", "max", "mean"), prompt_length=10)
    assert torch.equal(empty, torch.zeros_like(empty))


def test_exported_pooling_graph_never_reads_padded_positions(tmp_path):
    """The pooling traced into the ONNX graph (the same function) keeps its guarantees on ONNX Runtime."""
    import onnxruntime as ort

    class Graph(torch.nn.Module):
        def forward(self, tokens, mask, prompt_length):
            return pool_tokens(tokens, mask, POOLING_MODES, prompt_length=prompt_length)

    torch.manual_seed(0)
    rows = [torch.randn(n, 4) for n in (3, 7, 1, 5)]
    tokens, mask = _padded(rows, "right", 0.0)
    path = tmp_path / "pool.onnx"
    torch.onnx.export(Graph(), (tokens, mask, torch.tensor(2)), str(path), dynamo=False, opset_version=17,
                      input_names=["tokens", "mask", "prompt_length"], output_names=["out"],
                      dynamic_axes={"tokens": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for side in ("left", "right"):
        for prompt_length in (0, 2):
            tokens, mask = _padded(rows, side, float("nan"))
            got = session.run(None, {"tokens": tokens.numpy(), "mask": mask.numpy(),
                                     "prompt_length": np.array(prompt_length, dtype=np.int64)})[0]
            expected = pool_tokens(tokens, mask, POOLING_MODES, prompt_length=prompt_length)
            assert np.isfinite(got).all() and np.allclose(got, expected.numpy(), atol=1e-5), (side, prompt_length)


# -- EOS: the tokenizer's post-processor decides --------------------------------------------------------------
def test_eos_comes_from_the_post_processor_only(models, qwen3_right):
    model = models["qwen3"]
    ids = model.engine.tokenize(DECODER_TEXTS).ids
    for text, row in zip(DECODER_TEXTS, ids):
        assert row.tolist() == model.tokenizer(text)["input_ids"]  # the model's own tokenizer, unchanged
        assert row[-1] == EOS_ID and (row == EOS_ID).sum() == 1  # appended once, by the post-processor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = SentenceTransformer(str(qwen3_right), device="cpu")
    assert all(row[-1] != EOS_ID for row in plain.engine.tokenize(DECODER_TEXTS).ids)  # never appended by us


def test_last_token_is_the_eos_hidden_state(models):
    model = models["llama"]
    tokens = model.encode(DECODER_TEXTS, output_value="token_embeddings", convert_to_numpy=True)
    pooled = model.encode(DECODER_TEXTS)
    for row, embedding in zip(tokens, pooled):
        assert np.allclose(np.asarray(row)[-1], embedding, atol=1e-6)


@pytest.mark.parametrize(("fixture", "side"), [("decoders", "left"), ("qwen3_right", "right")])
def test_onnx_tokenizer_matches_the_hf_tokenizer(request, fixture, side):
    """The ONNX path's tokenizer gives the same ids and masks as transformers' (padding side and post-processor
    from the folder: EOS appended, or not), also when truncating."""
    from transformers import AutoTokenizer

    folder = request.getfixturevalue(fixture)
    folder = folder["qwen3"] if isinstance(folder, dict) else folder
    hf = AutoTokenizer.from_pretrained(folder)
    fast = FastTokenizer.from_file(folder / "tokenizer.json", folder, max_length=None)
    assert fast.padding_side == side and fast.pad_id == hf.pad_token_id
    for max_length in (None, 6):
        fast.set_max_length(max_length)
        ours = fast(DECODER_TEXTS)
        theirs = hf(DECODER_TEXTS, padding=True, truncation=max_length is not None, max_length=max_length,
                    return_tensors="np")
        assert np.array_equal(ours["input_ids"], theirs["input_ids"]), max_length
        assert np.array_equal(ours["attention_mask"], theirs["attention_mask"]), max_length
        assert (ours["attention_mask"][:, 0 if side == "left" else -1] == 0).any()  # padded on that side


# -- prompts, Matryoshka, precision ----------------------------------------------------------------------------
def test_instruction_prompts_from_the_folder(qwen3_saved):
    model = SentenceTransformer(str(qwen3_saved), device="cpu")
    assert model.prompts == PROMPTS and model.tokenizer.padding_side == "left"
    prefixed = model.encode([QWEN3_QUERY_PROMPT + t for t in DECODER_TEXTS])
    assert np.array_equal(model.encode_query(DECODER_TEXTS), prefixed)
    assert np.array_equal(model.encode(DECODER_TEXTS, prompt_name="query"), prefixed)
    assert np.array_equal(model.encode(DECODER_TEXTS, prompt=QWEN3_QUERY_PROMPT), prefixed)
    assert np.array_equal(model.encode_document(DECODER_TEXTS), model.encode(DECODER_TEXTS))  # "" is no prompt
    assert not np.allclose(prefixed, model.encode(DECODER_TEXTS))


def test_plain_folder_prompts_file_is_not_read(decoders, tmp_path):
    """Without a modules.json, sentence-transformers 6.2 builds the model from its defaults and never reads
    config_sentence_transformers.json: the same embeddings here, and a warning says so."""
    folder = shutil.copytree(decoders["qwen2"], tmp_path / "m")
    write_prompts(folder, PROMPTS)
    with pytest.warns(UserWarning, match="config_sentence_transformers.json .* is not read"):
        model = SentenceTransformer(str(folder), device="cpu")
    assert model.prompts == {"query": "", "document": ""}


def test_include_prompt_false_with_left_padding(models):
    """Mean pooling without the instruction: each text's tokens after the prompt's (the prompt's length counts
    no trailing EOS), whatever the padding."""
    transformer = models["qwen3"][0]
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean", include_prompt=False)], prompts=PROMPTS,
                                device="cpu")
    prompt_ids = model.tokenizer(QWEN3_QUERY_PROMPT)["input_ids"]
    assert prompt_ids[-1] == EOS_ID
    assert model.engine.prompt_length(QWEN3_QUERY_PROMPT) == len(prompt_ids) - 1
    pooled = model.encode_query(DECODER_TEXTS, **ONE_BATCH)
    tokens = model.encode_query(DECODER_TEXTS, output_value="token_embeddings", convert_to_numpy=True)
    expected = np.stack([np.asarray(t)[len(prompt_ids) - 1:].mean(0) for t in tokens])
    assert np.abs(pooled - expected).max() < 1e-5


def test_matryoshka_truncation(models):
    model = models["mistral"]
    full = model.encode(DECODER_TEXTS)
    assert np.array_equal(model.encode(DECODER_TEXTS, truncate_dim=16), full[:, :16])
    queries = model.encode_query(DECODER_TEXTS)
    model.truncate_dim = 8  # what truncate_dim=8 at loading sets
    try:
        assert np.array_equal(model.encode_query(DECODER_TEXTS), queries[:, :8])
        assert model.get_sentence_embedding_dimension() == 8
    finally:
        model.truncate_dim = None


def test_bfloat16_weights_give_float32_arrays(decoders, models):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without bf16 kernels warns that it is slow
        model = SentenceTransformer(str(decoders["qwen3"]), device="cpu", model_kwargs={"torch_dtype": "bfloat16"})
    assert model[0].auto_model.dtype == torch.bfloat16
    rows = model.encode(DECODER_TEXTS)
    assert isinstance(rows, np.ndarray) and rows.dtype == np.float32
    full = models["qwen3"].encode(DECODER_TEXTS)
    cosine = (rows * full).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(full, axis=1)
    assert cosine.min() > 0.99


def test_auto_compute_dtype_on_a_decoder(decoders):
    """compute_dtype='auto' is bf16 exactly where the CPU runs it fast, for decoders as for encoders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(str(decoders["gemma"]), device="cpu", compute_dtype="auto")
    assert model.compute_dtype == ("bfloat16" if cpu_features().bf16 else "float32")
    assert model.encode(DECODER_TEXTS).dtype == np.float32


# -- saving ----------------------------------------------------------------------------------------------------
def test_saves_in_sentence_transformers_layout(models, tmp_path):
    model = models["qwen2"]
    model.save(tmp_path / "saved")
    entries = json.loads((tmp_path / "saved" / "modules.json").read_text())
    assert [(e["path"], e["type"].rsplit(".", 1)[-1]) for e in entries] == [("", "Transformer"),
                                                                           ("1_Pooling", "Pooling")]
    assert json.loads((tmp_path / "saved" / "1_Pooling" / "config.json").read_text())["pooling_mode_lasttoken"]
    saved = json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())
    assert saved["prompts"]["query"] == QWEN3_QUERY_PROMPT
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a saved embedder: no "No sentence-transformers model" warning
        again = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert again.tokenizer.padding_side == "left"
    assert not any(isinstance(m, Normalize) for m in again)
    assert np.array_equal(again.encode_query(DECODER_TEXTS), model.encode_query(DECODER_TEXTS))


# -- ONNX Runtime ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def qwen3_onnx(qwen3_saved, tmp_path_factory):
    folder = shutil.copytree(qwen3_saved, tmp_path_factory.mktemp("onnx") / "qwen3")  # exports land beside it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SentenceTransformer(str(folder), backend="onnx")


@pytest.mark.parametrize("side", ["left", "right"])
def test_onnx_backend_matches_torch(models, qwen3_onnx, side):
    """Same rows as torch and as one text at a time, with the folder's left padding and with right padding (one
    graph serves both sides: the side is the tokenizer's)."""
    torch_model = models["qwen3"]
    assert qwen3_onnx.tokenizer.padding_side == "left"
    qwen3_onnx.tokenizer.padding_side = side
    try:
        for encode, prompt_name in (("encode", None), ("encode_query", "query")):
            ours = getattr(qwen3_onnx, encode)(DECODER_TEXTS, **ONE_BATCH)
            assert np.abs(ours - getattr(torch_model, encode)(DECODER_TEXTS)).max() < 1e-4, encode
            assert np.abs(ours - one_by_one(qwen3_onnx, DECODER_TEXTS, prompt_name=prompt_name)).max() < 1e-5, encode
    finally:
        qwen3_onnx.tokenizer.padding_side = "left"
    assert qwen3_onnx.fingerprint() == torch_model.fingerprint()


@pytest.mark.slow
def test_onnx_backend_right_padding_folder(qwen3_right, tmp_path):
    folder = shutil.copytree(qwen3_right, tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx = SentenceTransformer(str(folder), backend="onnx")
        torch_model = SentenceTransformer(str(folder), device="cpu")
    assert onnx.tokenizer.padding_side == "right"
    rows = onnx.encode(DECODER_TEXTS, **ONE_BATCH)
    assert np.abs(rows - torch_model.encode(DECODER_TEXTS)).max() < 1e-4
    assert np.abs(rows - one_by_one(onnx, DECODER_TEXTS)).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in DECODER_ARCHS if a != "qwen3"])
def test_onnx_backend_exports_every_architecture(decoders, models, arch, tmp_path):
    """Each architecture exports and matches torch; attention is GroupQueryAttention except for Mistral, whose
    sliding window (4,096) the fused export refuses (plain MatMul + Softmax then)."""
    folder = shutil.copytree(decoders[arch], tmp_path / arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx = SentenceTransformer(str(folder), backend="onnx", prompts=PROMPTS)
    assert np.abs(onnx.encode_query(DECODER_TEXTS) - models[arch].encode_query(DECODER_TEXTS)).max() < 1e-4
    assert ("GroupQueryAttention" in graph_ops(onnx)) == (arch != "mistral")
    assert onnx.engine.meta.get("right_padding", False) == (arch != "mistral")


def graph_ops(model) -> set[str]:
    """The op types of the graph ``model``'s ONNX or OpenVINO engine runs."""
    import onnx

    return {node.op_type for node in onnx.load(str(model.engine.graph)).graph.node}


def test_onnx_decoder_attention_is_one_group_query_attention_node_a_layer(qwen3_onnx):
    """No n x n tensors in the decoder's graph: one com.microsoft.GroupQueryAttention per layer, no Softmax;
    the graph asks for right-padded batches, the tokenizer keeps the folder's side."""
    import onnx

    nodes = onnx.load(str(qwen3_onnx.engine.graph)).graph.node
    fused = [n for n in nodes if n.op_type == "GroupQueryAttention"]
    assert len(fused) == 2 and all(n.domain == "com.microsoft" for n in fused)  # the tiny model's 2 layers
    assert "Softmax" not in {n.op_type for n in nodes}
    assert qwen3_onnx.engine.meta["right_padding"] is True and qwen3_onnx.tokenizer.padding_side == "left"


@pytest.mark.slow
def test_onnx_decoder_int8_keeps_group_query_attention(qwen3_onnx):
    """int8 quantizes the projections around the fused attention (which stays float32), calibrated on the
    right-padded batches the graph runs on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = SentenceTransformer(str(qwen3_onnx.engine.graph.parent.parent), backend="onnx", compute_dtype="int8",
                                   calibration_texts=DECODER_TEXTS * 4)
    assert "GroupQueryAttention" in graph_ops(int8) and int8.engine.meta["right_padding"] is True
    a, b = int8.encode(DECODER_TEXTS), qwen3_onnx.encode(DECODER_TEXTS)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999 and int8.engine.meta["quantization"]["cosine_min"] > 0.999


@pytest.mark.slow
def test_openvino_exports_plain_attention_beside_the_fused_graph(qwen3_onnx, models):
    """OpenVINO cannot read GroupQueryAttention: with the ONNX backend's fused export cached, it exports (and
    caches) a plain-attention graph of its own."""
    # find_spec, not importorskip: importing openvino here would bypass the engine's telemetry guard
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov = SentenceTransformer(str(qwen3_onnx.engine.graph.parent.parent), backend="openvino")
    assert ov.engine.graph != qwen3_onnx.engine.graph and "GroupQueryAttention" not in graph_ops(ov)
    assert "right_padding" not in ov.engine.meta
    assert np.abs(ov.encode(DECODER_TEXTS) - models["qwen3"].encode(DECODER_TEXTS)).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("side", ["left", "right"])
def test_onnx_decoder_cross_encoder_matches_torch(tmp_path, side):
    """A Qwen3 sequence-classification reranker: fused attention, same scores as torch and as one pair at a
    time, for either padding side of the folder."""
    from transformers import AutoModelForSequenceClassification

    from sentencekit import CrossEncoder
    from tests.decoder_folders import qwen_tokenizer, tiny_decoder_config

    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(tiny_decoder_config("qwen3", num_labels=1)).save_pretrained(
        tmp_path)
    qwen_tokenizer(append_eos=True, padding_side=side).save_pretrained(tmp_path)
    pairs = [(DECODER_TEXTS[0], DECODER_TEXTS[1]), (DECODER_TEXTS[2], "x"), ("q", DECODER_TEXTS[-1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = CrossEncoder(str(tmp_path), device="cpu").predict(pairs, activation_fn=torch.nn.Identity())
        onnx = CrossEncoder(str(tmp_path), backend="onnx")
    scores = onnx.predict(pairs, activation_fn=torch.nn.Identity())
    assert "GroupQueryAttention" in graph_ops(onnx)
    assert np.abs(scores - reference).max() < 1e-5
    assert np.abs(np.array([onnx.predict([p], activation_fn=torch.nn.Identity())[0] for p in pairs]) - scores).max() \
        < 1e-5


def test_onnx_export_failure_names_the_architecture(decoders, tmp_path, monkeypatch):
    from sentencekit.engines import onnx_export

    def fail(*args, **kwargs):
        raise RuntimeError("an operator the exporter does not know")

    monkeypatch.setattr(torch.onnx, "export", fail)
    folder = shutil.copytree(decoders["gemma"], tmp_path / "gemma")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(onnx_export.UnsupportedModelError, match=r"GemmaModel.*backend='torch'"):
            SentenceTransformer(str(folder), backend="onnx")


def test_sparse_encoder_on_a_plain_causal_lm_folder(decoders):
    """6.2's SparseEncoder builds a CSR model for any non-MLM folder, a causal LM included: Transformer
    (feature-extraction: the base model) + mean Pooling (not last-token) + an untrained SparseAutoEncoder(d, 4d,
    k=256, k_aux=512), with a warning that it needs training (``sparse_encoder/model.py``)."""
    from sentencekit import SparseEncoder
    from sentencekit.modules import SparseAutoEncoder

    with pytest.warns(UserWarning, match="untrained"):
        model = SparseEncoder(str(decoders["qwen3"]), device="cpu")
    transformer, pooling, sae = list(model)
    assert isinstance(transformer, Transformer) and transformer.transformer_task == "feature-extraction"
    assert pooling.pooling_modes == ("mean",) and isinstance(sae, SparseAutoEncoder)
    assert (sae.k, sae.k_aux) == (256, 512)
    assert model.encode(DECODER_TEXTS[:2]).shape == (2, 4 * 32)
