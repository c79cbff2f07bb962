"""Generative (causal-LM) rerankers in CrossEncoder (issue 17): a text-generation Transformer + LogitScore, chat
templates (sentencekit.pipeline.chat_messages), prompts, left padding, restore_suffix, the v6 save, the CLI and the
server's rerank routes. Tiny random Qwen3 folders with Qwen's real tokenizer (tests/decoder_folders.py);
sentence-transformers parity is measured by ``benchmarks/st_compat.py generative``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sentencekit import CrossEncoder
from sentencekit.files import ModelFormatError
from sentencekit.modules import LogitScore, Transformer
from tests.decoder_folders import (
    QWEN3_RERANKER_TEMPLATE,
    RERANKER_PAIRS,
    RERANKER_TEMPLATES,
    USER_ONLY_TEMPLATE,
    build_generative_reranker,
    build_tiny_decoder,
)

pytestmark = [
    # slow tier: each test loads or builds 151k-vocabulary decoder folders (Qwen's tokenizer), ~1-12 s apiece
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning"),
]


@pytest.fixture(scope="session")
def gen_dirs(tmp_path_factory) -> dict[str, Path]:
    """Plain Qwen3 *ForCausalLM folders: no chat template, ChatML, Qwen3-Reranker's template."""
    root = tmp_path_factory.mktemp("generative")
    return {style: build_generative_reranker(root / style, style) for style in RERANKER_TEMPLATES}


@pytest.fixture(scope="session")
def gen_models(gen_dirs) -> dict[str, CrossEncoder]:
    return {style: CrossEncoder(str(folder), device="cpu") for style, folder in gen_dirs.items()}


def reference_score(model: CrossEncoder, ids: list[int]) -> float:
    """Sigmoid(logit(yes) - logit(no)) at the last position of one unpadded row, straight from the HF model."""
    head = model[1]
    with torch.inference_mode():
        logits = model.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return float(torch.sigmoid(logits[head.true_token_id] - logits[head.false_token_id]))


def rendered_ids(model: CrossEncoder, messages: list[dict]) -> list[int]:
    tok = model.tokenizer
    return tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]


# -- LogitScore ----------------------------------------------------------------------------------------------------
def test_logit_score_is_the_last_positions_log_odds():
    logits = torch.randn(3, 4, 10)
    out = LogitScore(true_token_id=7, false_token_id=2)({"causal_logits": logits})
    assert out["scores"].shape == (3, 1)
    torch.testing.assert_close(out["scores"][:, 0], logits[:, -1, 7] - logits[:, -1, 2])
    only_true = LogitScore(7)({"causal_logits": logits})["scores"]
    torch.testing.assert_close(only_true[:, 0], logits[:, -1, 7])
    custom = LogitScore(1, 0, module_input_name="other")({"other": logits[:, :1]})["scores"]
    torch.testing.assert_close(custom[:, 0], logits[:, 0, 1] - logits[:, 0, 0])


def test_logit_score_config_round_trip_and_errors(tmp_path):
    LogitScore(5, 3).save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"true_token_id": 5, "false_token_id": 3,
                                                                 "module_input_name": "causal_logits"}
    back = LogitScore.load(tmp_path)
    assert (back.true_token_id, back.false_token_id, back.module_input_name) == (5, 3, "causal_logits")
    assert LogitScore.st_type == "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"
    with pytest.raises(ValueError, match="true_token_id"):
        LogitScore(-1)
    with pytest.raises(ValueError, match="outside the model's 10 logits"):
        LogitScore(12, 1)({"causal_logits": torch.zeros(1, 1, 10)})


# -- loading -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", list(RERANKER_TEMPLATES))
def test_a_plain_causal_lm_folder_loads_as_a_generative_reranker(gen_models, style):
    model = gen_models[style]
    transformer, head = model[0], model[1]
    assert isinstance(transformer, Transformer) and transformer.transformer_task == "text-generation"
    assert type(transformer.auto_model).__name__ == "Qwen3ForCausalLM"
    assert isinstance(head, LogitScore) and model.is_generative
    assert head.true_token_id == model.tokenizer.convert_tokens_to_ids("yes")
    assert head.false_token_id == model.tokenizer.convert_tokens_to_ids("no")
    assert model.tokenizer.padding_side == "left"
    assert model.num_labels == 1 and type(model.activation_fn).__name__ == "Sigmoid"
    assert model.untrained_head is None
    assert transformer.message_format == (None if style == "bare" else "flat")


def test_predict_equals_the_language_models_yes_no_log_odds(gen_models):
    q, d = RERANKER_PAIRS[0]
    chat = gen_models["qwen3-reranker"]
    ids = rendered_ids(chat, [{"role": "query", "content": q}, {"role": "document", "content": d}])
    assert chat.predict((q, d)) == pytest.approx(reference_score(chat, ids), abs=1e-6)
    bare = gen_models["bare"]  # no template: a plain tokenizer pair (Qwen adds no special tokens)
    assert bare.predict((q, d)) == pytest.approx(reference_score(bare, bare.tokenizer(q, d)["input_ids"]), abs=1e-6)


@pytest.mark.parametrize("style", list(RERANKER_TEMPLATES))
def test_batch_equals_one_by_one_with_mixed_lengths(gen_models, style):
    model = gen_models[style]
    pairs = [tuple(p) for p in RERANKER_PAIRS]
    kept = [tuple(p) for p in pairs]
    batch = model.predict(pairs, batch_size=3)
    one = np.array([model.predict(p) for p in pairs])
    assert batch.shape == (len(pairs),) and batch.dtype == np.float32
    assert len({len(model.tokenizer(q + d)["input_ids"]) for q, d in pairs}) > 3  # lengths really are mixed
    np.testing.assert_allclose(batch, one, atol=1e-5)
    assert pairs == kept
    ranked = model.rank(pairs[0][0], [d for _, d in pairs], return_documents=True)
    assert [r["score"] for r in ranked] == sorted(batch_score := [r["score"] for r in ranked], reverse=True)
    assert len(batch_score) == len(pairs)


def test_a_prompt_is_a_system_message_with_a_chat_template_else_prepended(gen_models):
    q, d = RERANKER_PAIRS[3]
    prompt = "Find passages about animals"
    chat = gen_models["qwen3-reranker"]
    ids = rendered_ids(chat, [{"role": "system", "content": prompt}, {"role": "query", "content": q},
                              {"role": "document", "content": d}])
    assert f"<Instruct>: {prompt}" in chat.tokenizer.decode(ids)
    assert chat.predict((q, d), prompt=prompt) == pytest.approx(reference_score(chat, ids), abs=1e-6)
    assert chat.predict((q, d), prompt=prompt) != pytest.approx(chat.predict((q, d)), abs=1e-7)
    bare = gen_models["bare"]
    assert bare.predict((q, d), prompt=prompt) == pytest.approx(bare.predict((prompt + q, d)), abs=1e-6)
    with pytest.raises(ValueError, match="Prompt name 'web' not found"):
        bare.predict((q, d), prompt_name="web")


def test_causal_logits_keep_the_last_position_unless_told_otherwise(gen_dirs):
    model = CrossEncoder(str(gen_dirs["chatml"]), device="cpu")
    features = model.tokenize([RERANKER_PAIRS[0], RERANKER_PAIRS[4]])
    features.pop("truncated")
    last = model[0](dict(features))["causal_logits"]
    assert last.shape == (2, 1, 151646)
    model[0].processing_kwargs = {"text": {"logits_to_keep": 0}}
    every = model[0](dict(features))["causal_logits"]
    assert every.shape == (2, features["input_ids"].shape[1], 151646)
    torch.testing.assert_close(every[:, -1:], last, atol=1e-5, rtol=1e-5)


def test_right_padding_is_refused_naming_the_setting(gen_dirs):
    model = CrossEncoder(str(gen_dirs["bare"]), device="cpu")
    model.tokenizer.padding_side = "right"
    # lengths a few tokens apart share a batch (the CPU batch cut splits rows only where padding costs more
    # than a batch), so the shorter row ends in padding
    pairs = [("capital of France", "Paris is the capital."), ("capital of France", "Paris is the capital of France.")]
    with pytest.raises(ValueError, match="padding_side"):
        model.predict(pairs)


def test_a_template_that_drops_the_pair_is_refused_with_an_example(tmp_path):
    folder = build_tiny_decoder(tmp_path / "user-only", "qwen3", append_eos=False, chat_template=USER_ONLY_TEMPLATE)
    model = CrossEncoder(str(folder), device="cpu")
    with pytest.raises(ValueError, match=r"'query' and 'document' content does not reach") as info:
        model.predict(RERANKER_PAIRS[:2])
    assert 'selectattr("role", "eq", "query")' in str(info.value) and "chat_template.jinja" in str(info.value)
    model.tokenizer.chat_template = QWEN3_RERANKER_TEMPLATE  # the documented remedy takes effect
    assert model.predict(RERANKER_PAIRS[:2]).shape == (2,)


def test_truncation_restores_the_templates_tail(gen_dirs):
    model = CrossEncoder(str(gen_dirs["qwen3-reranker"]), device="cpu", max_length=70)
    q, d = RERANKER_PAIRS[1]  # the long document: cut at 70 tokens
    messages = [{"role": "query", "content": q}, {"role": "document", "content": d}]
    full = rendered_ids(model, messages)
    tail = model.tokenizer("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
                           add_special_tokens=False)["input_ids"]
    assert len(full) > 70 and full[-len(tail):] == tail
    got = model.tokenize([(q, d)])["input_ids"][0].tolist()
    assert len(got) == 70 and got == full[:70 - len(tail)] + tail
    score = model.predict((q, d))
    assert model.last_predict_info.truncated_indices == (0,)
    assert score == pytest.approx(reference_score(model, got), abs=1e-6)
    model[0].processing_kwargs = {"chat_template": {"restore_suffix": False}}
    assert model.tokenize([(q, d)])["input_ids"][0].tolist() == full[:70]


def test_a_limit_the_template_alone_fills_is_warned_about(gen_dirs):
    """Qwen3-Reranker's instructions take more than 24 tokens: cut there, no query or document text is left and
    every pair scores the same (6.2 computes the same numbers); the warning says so."""
    model = CrossEncoder(str(gen_dirs["qwen3-reranker"]), device="cpu", max_length=24)
    with pytest.warns(UserWarning, match="chat template and prompt alone take"):
        scores = model.predict(RERANKER_PAIRS)
    assert np.ptp(scores) == 0.0
    roomy = CrossEncoder(str(gen_dirs["qwen3-reranker"]), device="cpu", max_length=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        roomy.predict(RERANKER_PAIRS[:2])


def test_processing_kwargs_per_call_override_the_models(gen_models):
    model = gen_models["qwen3-reranker"]
    q, d = RERANKER_PAIRS[1]
    full = rendered_ids(model, [{"role": "query", "content": q}, {"role": "document", "content": d}])
    cut = model.predict((q, d), processing_kwargs={"text": {"max_length": 60},
                                                   "chat_template": {"restore_suffix": False}})
    assert cut == pytest.approx(reference_score(model, full[:60]), abs=1e-6)
    assert model.last_predict_info.truncated_indices == (0,)
    assert model.last_predict_info.max_seq_length == 60  # the call's limit is the one reported
    assert model.predict((q, d)) == pytest.approx(reference_score(model, full), abs=1e-6)  # the call's only
    with pytest.raises(ValueError, match="padding"):
        model.predict((q, d), processing_kwargs={"text": {"padding": "max_length"}})


def test_a_tokenizer_without_yes_or_no_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = build_tiny_decoder(tmp_path / "no-yes", "qwen3", append_eos=False)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    words = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[UNK]").save_pretrained(folder)
    with pytest.raises(ModelFormatError, match="no 'yes' token"):
        CrossEncoder(str(folder), device="cpu")


def test_other_tasks_and_backends_are_refused_clearly(gen_dirs):
    with pytest.raises(ValueError, match="any-to-any"):
        Transformer(str(gen_dirs["bare"]), transformer_task="any-to-any")
    with pytest.raises(ValueError, match="generative .* onnx backend"):
        CrossEncoder(str(gen_dirs["bare"]), backend="onnx")


# -- saving ----------------------------------------------------------------------------------------------------------
def test_save_writes_62s_layout_and_reloads_identically(gen_models, tmp_path):
    model = gen_models["qwen3-reranker"]
    model.prompts = {"web": "Find passages"}
    try:
        model.save(tmp_path / "saved")
    finally:
        model.prompts = {}
    folder = tmp_path / "saved"
    for name in ("chat_template.jinja", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "modules.json").read_text()) == [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_LogitScore",
         "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"}]
    assert json.loads((folder / "sentence_bert_config.json").read_text()) == {
        "transformer_task": "text-generation",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"},
                            "message": {"method": "forward", "method_output_name": "logits", "format": "flat"}},
        "module_output_name": "causal_logits"}
    head = json.loads((folder / "1_LogitScore" / "config.json").read_text())
    assert head == {"true_token_id": model[1].true_token_id, "false_token_id": model[1].false_token_id,
                    "module_input_name": "causal_logits"}
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "CrossEncoder" and config["prompts"] == {"web": "Find passages"}
    assert config["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    back = CrossEncoder(str(folder), device="cpu")
    assert back[0].message_format == "flat" and back.prompts == {"web": "Find passages"}
    np.testing.assert_array_equal(back.predict(RERANKER_PAIRS), model.predict(RERANKER_PAIRS))
    np.testing.assert_array_equal(back.predict(RERANKER_PAIRS, prompt_name="web"),
                                  model.predict(RERANKER_PAIRS, prompt="Find passages"))


def test_save_without_a_template_has_no_message_modality(gen_models, tmp_path):
    model = gen_models["bare"]
    model.save(tmp_path / "bare")
    saved = json.loads((tmp_path / "bare" / "sentence_bert_config.json").read_text())
    assert set(saved["modality_config"]) == {"text"} and not (tmp_path / "bare" / "chat_template.jinja").exists()
    np.testing.assert_array_equal(CrossEncoder(str(tmp_path / "bare")).predict(RERANKER_PAIRS),
                                  model.predict(RERANKER_PAIRS))


def test_modules_built_by_hand(gen_dirs):
    transformer = Transformer(str(gen_dirs["chatml"]), transformer_task="text-generation")
    model = CrossEncoder(modules=[transformer, LogitScore(9693, 2152)], device="cpu")
    reference = CrossEncoder(str(gen_dirs["chatml"]), device="cpu")
    np.testing.assert_allclose(model.predict(RERANKER_PAIRS), reference.predict(RERANKER_PAIRS), atol=1e-6)
    with pytest.raises(ModelFormatError, match="followed by LogitScore"):
        CrossEncoder(modules=[Transformer(str(gen_dirs["chatml"]), transformer_task="text-generation")])


# -- CLI and server ------------------------------------------------------------------------------------------------
def test_rerank_command_with_a_generative_reranker(gen_dirs, gen_models, tmp_path, capsys):
    from sentencekit.cli import main
    from tests.test_cli import write_corpus

    texts = [d for _, d in RERANKER_PAIRS]
    corpus = write_corpus(tmp_path / "docs.jsonl", texts)
    query = RERANKER_PAIRS[0][0]
    # --backend auto tries ONNX Runtime, which refuses generative rerankers: torch takes over
    assert main(["rerank", query, str(corpus), "--model", str(gen_dirs["qwen3-reranker"]), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = gen_models["qwen3-reranker"].rank(query, [f"T{i}\n{t}" for i, t in enumerate(texts)])
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-6)


def test_serve_scores_rerank_routes_with_a_generative_reranker(gen_dirs, gen_models, tiny_st_dir):
    pytest.importorskip("fastapi")
    from sentencekit.serve.models import load_models
    from sentencekit.serve.server_config import ServeConfig
    from tests.test_serve_sparse import served_client

    served = load_models(ServeConfig(model=str(tiny_st_dir), reranker=str(gen_dirs["chatml"]), backend="torch"))
    query, docs = RERANKER_PAIRS[0][0], [d for _, d in RERANKER_PAIRS]
    scores = gen_models["chatml"].predict([(query, d) for d in docs])
    best_first = list(np.argsort(-scores, kind="stable"))
    with served_client(served) as client:
        r = client.post("/rerank", json={"query": query, "texts": docs})
        assert r.status_code == 200, r.text
        assert [x["index"] for x in r.json()] == best_first
        # the header counts the chat template's tokens, which the model reads, not the bare pair's
        tok = gen_models["chatml"].tokenizer
        rendered = [tok(tok.apply_chat_template([{"role": "query", "content": query},
                                                 {"role": "document", "content": d}], tokenize=False),
                        add_special_tokens=False)["input_ids"] for d in docs]
        assert r.headers["x-compute-tokens"] == str(sum(len(ids) for ids in rendered))
        np.testing.assert_allclose([x["score"] for x in r.json()], scores[best_first], atol=1e-5)
        r = client.post("/v1/rerank", json={"query": query, "documents": docs, "top_n": 2})
        assert r.status_code == 200, r.text
        assert [x["index"] for x in r.json()["results"]] == best_first[:2]
