"""CrossEncoder on tiny generated rerankers: scores against an independent transformers computation,
rank, formats (v5 and v6 layouts), activations, save/load, truncation reports and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sentencekit import CrossEncoder, SentenceTransformer
from sentencekit.families.embedder import TruncationWarning
from sentencekit.files import ModelFormatError

PAIRS = [
    ("how do i get a refund", "refund policy please"),
    ("hello", "world"),
    ("the cat sat on the mat", "the dog sat"),
    ("password reset", "login help for my account password reset please thanks"),
]


def hf_logits(folder, pairs, max_length=48):
    """Logits of each pair on its own (no padding), straight from transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    out = []
    with torch.no_grad():
        for a, b in pairs:
            enc = tok([a], [b], truncation=True, max_length=max_length, return_tensors="pt")
            out.append(model(**enc).logits[0])
    return torch.stack(out)


@pytest.fixture()
def ce(tiny_ce_dir):
    return CrossEncoder(str(tiny_ce_dir), device="cpu")


def test_predict_matches_transformers_with_sigmoid(ce, tiny_ce_dir):
    scores = ce.predict(PAIRS, batch_size=3)
    expected = torch.sigmoid(hf_logits(tiny_ce_dir, PAIRS)[:, 0]).numpy()
    assert scores.shape == (4,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.ptp(ce.predict(PAIRS, activation_fn=torch.nn.Identity())) > 1e-3  # pairs are distinguishable


def test_batch_size_does_not_change_scores_or_order(ce):
    np.testing.assert_allclose(ce.predict(PAIRS, batch_size=1), ce.predict(PAIRS, batch_size=32), atol=1e-6)


def test_single_pair_gives_scalar(ce):
    many = ce.predict(PAIRS)
    one = ce.predict(PAIRS[2])
    assert np.ndim(one) == 0
    assert float(one) == pytest.approx(float(many[2]), abs=1e-6)
    assert np.ndim(ce.predict(list(PAIRS[2]))) == 0  # a pair given as a list


def test_outputs_and_activation_override(ce, tiny_ce_dir):
    logits = ce.predict(PAIRS, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(logits, hf_logits(tiny_ce_dir, PAIRS)[:, 0].numpy(), atol=1e-5)
    tensor = ce.predict(PAIRS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (4,)
    rows = ce.predict(PAIRS, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 4 and isinstance(rows[0], torch.Tensor)
    empty = ce.predict([])
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)


def test_multi_label_and_softmax(tiny_bert_dir, tmp_path):
    torch.manual_seed(3)
    model = CrossEncoder(str(tiny_bert_dir), num_labels=3, device="cpu")
    model.untrained_head = None  # opt in: this test checks the shapes a random 3-label head gives
    assert model.num_labels == 3 and isinstance(model.activation_fn, torch.nn.Identity)
    logits = model.predict(PAIRS)
    assert logits.shape == (4, 3)
    probs = model.predict(PAIRS, apply_softmax=True)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), dim=1).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="num_labels=3"):
        model.rank("q", ["a", "b"])
    model.save(tmp_path / "m3")
    np.testing.assert_allclose(CrossEncoder(str(tmp_path / "m3"), device="cpu").predict(PAIRS), logits, atol=1e-6)


def test_rank(ce):
    query = "how do i get a refund"
    docs = ["refund policy please", "hello world", "the cat sat", "password reset help"]
    scores = ce.predict([(query, d) for d in docs])
    ranked = ce.rank(query, docs)
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-scores, kind="stable"))
    assert all(isinstance(r["score"], float) for r in ranked)
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    top = ce.rank(query, docs, top_k=2, return_documents=True)
    assert len(top) == 2 and top[0]["text"] == docs[top[0]["corpus_id"]]
    assert "text" not in ranked[0]


@pytest.mark.parametrize("bad, error", [
    (None, TypeError), ("just a string", TypeError), ([("a", "b"), "c"], TypeError), ([("a", None)], TypeError),
    ([("a", "b", "c")], TypeError),
])
def test_bad_predict_input(ce, bad, error):
    with pytest.raises(error):
        ce.predict(bad)


def test_bad_rank_input(ce):
    with pytest.raises(TypeError, match="query"):
        ce.rank(None, ["a"])
    with pytest.raises(TypeError, match="list of strings"):
        ce.rank("q", "a single string")
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        ce.rank("q", ["a", 3])
    with pytest.raises(ValueError, match="top_k"):
        ce.rank("q", ["a"], top_k=0)


def test_save_round_trip_and_v5_layout(ce, tmp_path):
    ce.save(tmp_path / "copy")
    config = json.loads((tmp_path / "copy" / "config.json").read_text())
    assert config["sentence_transformers"]["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert not (tmp_path / "copy" / "modules.json").exists()  # the layout v5 and v6 both load
    tok_config = json.loads((tmp_path / "copy" / "tokenizer_config.json").read_text())
    assert tok_config["model_max_length"] == 48
    copy = CrossEncoder(str(tmp_path / "copy"), device="cpu")
    assert copy.max_length == 48
    np.testing.assert_array_equal(copy.predict(PAIRS), ce.predict(PAIRS))


def test_max_length_argument(tiny_ce_dir):
    model = CrossEncoder(str(tiny_ce_dir), max_length=8, device="cpu")
    assert model.max_length == 8
    with pytest.warns(TruncationWarning):
        model.predict(PAIRS)
    assert model.last_predict_info.num_truncated >= 1


def test_truncation_is_reported(ce):
    long_pair = ("refund", "please " * 100)
    with pytest.warns(TruncationWarning, match="1 of 2"):
        ce.predict([PAIRS[0], long_pair])
    assert ce.last_predict_info.truncated_indices == (1,)


def _v6_folder(src, dst, activation):
    """Rearrange a saved reranker into sentence-transformers v6's modules.json layout."""
    shutil.copytree(src, dst)
    v6_type = "sentence_transformers.base.modules.transformer.Transformer"
    (dst / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": v6_type}]))
    (dst / "config_sentence_transformers.json").write_text(json.dumps(
        {"model_type": "CrossEncoder", "activation_fn": activation, "prompts": {}, "default_prompt_name": None}))
    (dst / "sentence_bert_config.json").write_text(json.dumps(
        {"transformer_task": "sequence-classification", "module_output_name": "scores",
         "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}}}))
    config = json.loads((dst / "config.json").read_text())
    config.pop("sentence_transformers", None)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_loads_v6_modules_layout(ce, tiny_ce_dir, tmp_path):
    folder = _v6_folder(tiny_ce_dir, tmp_path / "v6", "torch.nn.modules.linear.Identity")
    model = CrossEncoder(str(folder), device="cpu")
    assert isinstance(model.activation_fn, torch.nn.Identity)
    np.testing.assert_allclose(model.predict(PAIRS), ce.predict(PAIRS, activation_fn=torch.nn.Identity()),
                               atol=1e-6)
    with pytest.raises(ModelFormatError, match="CrossEncoder"):
        SentenceTransformer(str(folder), device="cpu")


def test_legacy_activation_key_and_untrusted_activation(tiny_ce_dir, tmp_path):
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_ce_dir, legacy)
    config = json.loads((legacy / "config.json").read_text())
    config.pop("sentence_transformers")
    config["sbert_ce_default_activation_function"] = "torch.nn.modules.activation.Tanh"
    (legacy / "config.json").write_text(json.dumps(config))
    assert isinstance(CrossEncoder(str(legacy), device="cpu").activation_fn, torch.nn.Tanh)

    config.pop("sbert_ce_default_activation_function")
    config["sentence_transformers"] = {"activation_fn": "os.system"}
    (legacy / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="trust_remote_code"):
        model = CrossEncoder(str(legacy), device="cpu")
    assert isinstance(model.activation_fn, torch.nn.Sigmoid)


def test_plain_encoder_folder_gets_one_label_head(tiny_bert_dir):
    model = CrossEncoder(str(tiny_bert_dir), device="cpu")
    assert model.num_labels == 1 and isinstance(model.activation_fn, torch.nn.Sigmoid)
    model.untrained_head = None  # opt in (tests/test_untrained_head.py checks the refusal without it)
    assert model.predict(PAIRS).shape == (4,)


def test_activation_is_not_a_pipeline_step(ce):
    ce.activation_fn = torch.nn.Tanh()
    assert len(ce) == 1 and isinstance(ce.activation_fn, torch.nn.Tanh)
    assert np.all(np.abs(ce.predict(PAIRS)) < 1)


def test_threads_share_one_reranker(ce):
    from concurrent.futures import ThreadPoolExecutor

    expected = ce.predict(PAIRS)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ce.predict(PAIRS, batch_size=2), range(16)))
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_model_not_found_lists_places(tmp_path):
    from sentencekit.hub import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="Looked in"):
        CrossEncoder(str(tmp_path / "missing"))
