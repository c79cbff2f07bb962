"""Decoder embedders whose tokenizer has a chat template (model-families.md, section 5): a plain folder gets 6.2's
``message`` modality, so every text is rendered as a ``user`` message (a prompt as a system message) before
tokenizing; saved models keep what their ``modality_config`` says; the ONNX backend refuses rather than differ.

Parity with sentence-transformers itself is ``benchmarks/st_compat.py decoder``'s (``chat_decoder_cases``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer
from sentencekit.modules import Transformer
from sentencekit.spec.model_spec import has_chat_template, read_spec
from tests.decoder_folders import (
    CHATML_TEMPLATE,
    DECODER_TEXTS,
    QWEN3_QUERY_PROMPT,
    build_tiny_decoder,
    decoder_test_marks,
)

pytestmark = decoder_test_marks()
PROMPTS = {"query": QWEN3_QUERY_PROMPT, "document": ""}
ONE_BATCH = {"batch_size": len(DECODER_TEXTS), "max_batch_tokens": 100_000}


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """A plain Qwen3 ``*ForCausalLM`` folder whose tokenizer has a ChatML template (EOS appended, left padding)."""
    return build_tiny_decoder(tmp_path_factory.mktemp("chat") / "m", "qwen3", append_eos=True,
                              chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def model(chat_folder) -> SentenceTransformer:
    with pytest.warns(UserWarning, match="last-token pooling"):
        return SentenceTransformer(str(chat_folder), device="cpu", prompts=PROMPTS)


def by_hand(model: SentenceTransformer, messages: list[dict[str, str]]) -> np.ndarray:
    """The last-token hidden state of one conversation rendered by the tokenizer's own ``apply_chat_template``
    and tokenized without special tokens (what 6.2 feeds the model), computed row by row (no padding)."""
    tok = model.tokenizer
    text = tok.apply_chat_template(messages, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        hidden = model[0].auto_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    return hidden[0, -1].numpy()


def test_plain_folder_renders_texts_as_user_messages(model):
    assert model[0].message_format == "flat" and model[0].uses_chat_template
    rows = model.encode(DECODER_TEXTS, **ONE_BATCH)
    expected = np.stack([by_hand(model, [{"role": "user", "content": t}]) for t in DECODER_TEXTS])
    assert np.abs(rows - expected).max() < 1e-5
    # plain tokenization (what a saved text-only model does) gives other vectors: the template is really used
    plain = model.tokenizer(DECODER_TEXTS[1], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        bare = model[0].auto_model(input_ids=plain).last_hidden_state[0, -1].numpy()
    assert np.abs(rows[1] - bare).max() > 1e-3


def test_prompt_becomes_a_system_message(model):
    rows = model.encode_query(DECODER_TEXTS, **ONE_BATCH)
    expected = np.stack([by_hand(model, [{"role": "system", "content": QWEN3_QUERY_PROMPT},
                                         {"role": "user", "content": t}]) for t in DECODER_TEXTS])
    assert np.abs(rows - expected).max() < 1e-5
    # an empty prompt ("document") adds no system message
    docs = model.encode_document(DECODER_TEXTS, **ONE_BATCH)
    assert np.abs(docs - model.encode(DECODER_TEXTS, **ONE_BATCH)).max() < 1e-6


def test_include_prompt_false_does_not_drop_the_system_message(chat_folder):
    """6.2 tracks no prompt length for chat-template inputs: ``include_prompt=False`` changes nothing there."""
    with pytest.warns(UserWarning):
        model = SentenceTransformer(str(chat_folder), device="cpu", prompts=PROMPTS)
    model[1].pooling_modes = ("mean",)
    with_prompt = model.encode_query(DECODER_TEXTS, **ONE_BATCH)
    model[1].include_prompt = False
    assert np.abs(model.encode_query(DECODER_TEXTS, **ONE_BATCH) - with_prompt).max() < 1e-6


def test_saved_in_6_2_layout_and_reloaded(model, tmp_path):
    model.save(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "sentence_bert_config.json").read_text())
    assert config["transformer_task"] == "feature-extraction"
    assert config["module_output_name"] == "token_embeddings"
    assert config["modality_config"] == {
        "text": {"method": "forward", "method_output_name": "last_hidden_state"},
        "message": {"method": "forward", "method_output_name": "last_hidden_state", "format": "flat"}}
    modules = json.loads((tmp_path / "saved" / "modules.json").read_text())
    assert modules[0]["type"] == "sentence_transformers.base.modules.transformer.Transformer"
    assert has_chat_template(tmp_path / "saved")
    spec = read_spec(tmp_path / "saved")
    assert spec.renders_chat_template and not spec.is_multimodal  # `message` is a format, not a modality
    back = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert back[0].message_format == "flat" and back.prompts["query"] == QWEN3_QUERY_PROMPT
    assert np.abs(back.encode_query(DECODER_TEXTS, **ONE_BATCH) -
                  model.encode_query(DECODER_TEXTS, **ONE_BATCH)).max() < 1e-6


def test_saved_message_without_a_template_is_refused(model, tmp_path):
    model.save(tmp_path / "saved")
    for name in ("chat_template.jinja", "chat_template.json"):
        (tmp_path / "saved" / name).unlink(missing_ok=True)
    tconf = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    tconf.pop("chat_template", None)
    (tmp_path / "saved" / "tokenizer_config.json").write_text(json.dumps(tconf))
    with pytest.raises(Exception, match="chat_template"):
        SentenceTransformer(str(tmp_path / "saved"), device="cpu")


def test_saved_text_only_config_is_not_rendered(chat_folder, tmp_path):
    """A Transformer saved without ``message`` (a v5 ``sentence_bert_config.json``) tokenizes the bare text, as in
    6.2: only fresh loads infer the chat template."""
    folder = shutil.copytree(chat_folder, tmp_path / "v5")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    assert not read_spec(folder).renders_chat_template
    transformer = Transformer.load(folder)
    assert transformer.message_format is None
    ids = transformer.tokenize(["Hi"])["input_ids"][0].tolist()
    assert ids == transformer.tokenizer("Hi")["input_ids"]


def test_explicit_text_modality_config_opts_out(chat_folder):
    transformer = Transformer(str(chat_folder), modality_config={"text": {"method": "forward",
                                                                          "method_output_name": "last_hidden_state"}},
                              module_output_name="token_embeddings")
    assert transformer.message_format is None


def test_query_expansion_with_a_chat_template_is_refused(chat_folder):
    transformer = Transformer(str(chat_folder), query_expansion={"strategy": "fixed", "length": 8,
                                                                 "token": "<|endoftext|>"})
    with pytest.raises(ValueError, match="query_expansion cannot be combined with a chat-template"):
        transformer.tokenize_unpadded(["Hi"], task="query")


def test_onnx_backend_refuses_instead_of_differing(chat_folder, model, tmp_path):
    assert read_spec(chat_folder).renders_chat_template
    with pytest.raises(ValueError, match="chat template.*backend='torch'"):
        SentenceTransformer(str(chat_folder), backend="onnx")
    model.save(tmp_path / "saved")
    with pytest.raises(ValueError, match="chat template"):
        SentenceTransformer(str(tmp_path / "saved"), backend="onnx")
    assert not list(tmp_path.rglob("*.onnx"))  # refused before anything was exported
