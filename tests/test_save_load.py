"""Saving and loading in the sentence-transformers on-disk format: round trips, folder layout, v5/v6
type strings, atomic saves, plain Hugging Face folders and the model-level config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sentencekit import SentenceTransformer
from sentencekit.modules import Dense, Normalize, Pooling, StaticEmbedding, Transformer

TEXTS = ["how do i get a refund", "the cat sat on the mat", "hello", "", "please reset my password"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder (relative path -> bytes), and every sub-folder (-> b'<dir>')."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference(tiny_st_dir):
    return SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS)


@pytest.fixture(scope="module")
def hf_mean(tiny_bert_dir):
    """Mean-pooled (not normalised) embeddings computed directly with transformers."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    rows = []
    with torch.no_grad():
        for text in TEXTS:
            rows.append(model(**tok([text], return_tensors="pt")).last_hidden_state[0].double().mean(0))
    return torch.stack(rows).numpy()


def test_reference_is_normalised_mean_pooling(reference, hf_mean):
    """The saved fixture model is Transformer + mean Pooling + Normalize of the tiny BERT."""
    want = hf_mean / np.linalg.norm(hf_mean, axis=1, keepdims=True)
    np.testing.assert_allclose(reference, want, atol=2e-5)


# -- round trip and layout -------------------------------------------------------------------------


def test_save_load_round_trip(tiny_model, reference, tmp_path):
    out = tmp_path / "copy"
    tiny_model.save(out)
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert [type(m) for m in reloaded] == [Transformer, Pooling, Normalize]
    assert reloaded.max_seq_length == 48
    np.testing.assert_allclose(reloaded.encode(TEXTS), reference, atol=1e-6)


def test_save_accepts_pathlike_and_str(tiny_model, reference, tmp_path):
    tiny_model.save(str(tmp_path / "as-str"))
    tiny_model.save_pretrained(tmp_path / "as-path")
    for name in ("as-str", "as-path"):
        np.testing.assert_allclose(SentenceTransformer(tmp_path / name, device="cpu").encode(TEXTS), reference,
                                   atol=1e-6)


def test_saved_folder_layout(tiny_st_dir):
    modules = read_json(tiny_st_dir / "modules.json")
    assert [(m["type"], m["path"]) for m in modules] == [
        ("sentence_transformers.models.Transformer", ""),
        ("sentence_transformers.models.Pooling", "1_Pooling"),
        ("sentence_transformers.models.Normalize", "2_Normalize"),
    ]
    assert [m["idx"] for m in modules] == [0, 1, 2]
    assert [m["name"] for m in modules] == ["0", "1", "2"]
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "README.md", "1_Pooling/config.json"):
        assert (tiny_st_dir / name).is_file(), name
    assert read_json(tiny_st_dir / "sentence_bert_config.json") == {"max_seq_length": 48, "do_lower_case": False}
    pooling = read_json(tiny_st_dir / "1_Pooling" / "config.json")
    assert pooling["word_embedding_dimension"] == 32
    assert pooling["pooling_mode_mean_tokens"] is True
    assert pooling["pooling_mode_cls_token"] is False and pooling["pooling_mode_max_tokens"] is False
    # the transformer weights are loadable as a plain Hugging Face model
    assert any(k.endswith("embeddings.word_embeddings.weight") for k in load_file(str(tiny_st_dir /
                                                                                      "model.safetensors")))


def test_model_config_file(tiny_st_dir):
    config = read_json(tiny_st_dir / "config_sentence_transformers.json")
    assert config["model_type"] == "SentenceTransformer"
    assert config["prompts"] == {"query": "", "document": ""}
    assert config["default_prompt_name"] is None
    assert config["similarity_fn_name"] == "cosine"
    assert "truncate_dim" not in config
    assert set(config["__version__"]) >= {"sentencekit", "transformers", "pytorch"}


def test_model_card_optional(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "with-card", model_name="my-org/tiny")
    card = (tmp_path / "with-card" / "README.md").read_text(encoding="utf-8")
    assert "my-org/tiny" in card and "32-dimensional" in card
    tiny_model.save(tmp_path / "no-card", create_model_card=False)
    assert not (tmp_path / "no-card" / "README.md").exists()


def test_settings_saved_and_restored(tiny_st_dir, tmp_path):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "topic": "t: "},
                                default_prompt_name="topic", similarity_fn_name="dot", truncate_dim=16)
    model.max_seq_length = 20
    out = tmp_path / "settings"
    model.save(out)
    config = read_json(out / "config_sentence_transformers.json")
    assert config["prompts"] == {"query": "query: ", "document": "", "topic": "t: "}
    assert config["default_prompt_name"] == "topic"
    assert config["similarity_fn_name"] == "dot"
    assert config["truncate_dim"] == 16
    assert read_json(out / "sentence_bert_config.json")["max_seq_length"] == 20

    reloaded = SentenceTransformer(str(out), device="cpu")
    assert reloaded.prompts == {"query": "query: ", "document": "", "topic": "t: "}
    assert reloaded.default_prompt_name == "topic"
    assert reloaded.similarity_fn_name == "dot"
    assert reloaded.truncate_dim == 16
    assert reloaded.get_sentence_embedding_dimension() == 16
    assert reloaded.max_seq_length == 20
    np.testing.assert_allclose(reloaded.encode(TEXTS), model.encode(TEXTS), atol=1e-6)
    # the saved default prompt is applied: same as the explicit prompt on the original model
    np.testing.assert_allclose(reloaded.encode(TEXTS), model.encode(TEXTS, prompt="t: "), atol=1e-6)
    assert not np.allclose(reloaded.encode(TEXTS), model.encode(TEXTS, prompt=""), atol=1e-4)


def test_user_arguments_override_saved_settings(tiny_st_dir, tmp_path):
    SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "topic": "t: "},
                        similarity_fn_name="dot", truncate_dim=16).save(tmp_path / "m")
    model = SentenceTransformer(str(tmp_path / "m"), device="cpu", prompts={"query": "search: "},
                                similarity_fn_name="manhattan", truncate_dim=8)
    assert model.prompts["query"] == "search: "
    assert model.prompts["topic"] == "t: "  # saved prompts the user did not set are kept
    assert model.similarity_fn_name == "manhattan"
    assert model.truncate_dim == 8
    assert model.encode(TEXTS).shape == (len(TEXTS), 8)


def test_saving_over_an_existing_model_and_into_its_own_folder(tiny_st_dir, reference, tmp_path):
    out = tmp_path / "own"
    shutil.copytree(tiny_st_dir, out)
    model = SentenceTransformer(str(out), device="cpu", similarity_fn_name="euclidean")
    model.save(out)
    assert read_json(out / "config_sentence_transformers.json")["similarity_fn_name"] == "euclidean"
    np.testing.assert_allclose(SentenceTransformer(str(out), device="cpu").encode(TEXTS), reference, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own"]  # no temp or backup folders left


def test_dense_pipeline_round_trip(tiny_bert_dir, tmp_path):
    torch.manual_seed(0)
    model = SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=32), Pooling(32, "cls"),
                                         Dense(32, 8, activation_function="torch.nn.Identity"), Normalize()],
                                device="cpu")
    assert model.get_sentence_embedding_dimension() == 8
    out = tmp_path / "dense"
    model.save(out)
    modules = read_json(out / "modules.json")
    assert [(m["type"], m["path"]) for m in modules] == [
        ("sentence_transformers.models.Transformer", ""),
        ("sentence_transformers.models.Pooling", "1_Pooling"),
        ("sentence_transformers.models.Dense", "2_Dense"),
        ("sentence_transformers.models.Normalize", "3_Normalize"),
    ]
    assert read_json(out / "2_Dense" / "config.json") == {
        "in_features": 32, "out_features": 8, "bias": True,
        "activation_function": "torch.nn.modules.linear.Identity",
    }
    assert set(load_file(str(out / "2_Dense" / "model.safetensors"))) == {"linear.weight", "linear.bias"}
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert [type(m) for m in reloaded] == [Transformer, Pooling, Dense, Normalize]
    emb = reloaded.encode(TEXTS)
    assert emb.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(emb, model.encode(TEXTS), atol=1e-6)


def test_static_model_saved_without_safetensors_round_trips(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "cat": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    weights = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, weights)], device="cpu")
    model.save(tmp_path / "bin", safe_serialization=False)
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    assert not (tmp_path / "bin" / "model.safetensors").exists()
    reloaded = SentenceTransformer(str(tmp_path / "bin"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(["hello world", "cat"]),
                               np.stack([(weights[1] + weights[2]) / 2, weights[3]]), rtol=1e-6)


# -- reading other layouts -------------------------------------------------------------------------


def test_v6_type_strings_load(tiny_st_dir, reference, tmp_path):
    folder = tmp_path / "v6"
    shutil.copytree(tiny_st_dir, folder)
    modules = read_json(folder / "modules.json")
    v6 = ["sentence_transformers.base.modules.transformer.Transformer",
          "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
          "sentence_transformers.base.modules.normalize.Normalize"]
    for entry, type_str in zip(modules, v6):
        entry["type"] = type_str
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    # and the v6 Pooling config layout
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 32, "pooling_mode": "mean", "include_prompt": True}), encoding="utf-8")
    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [Transformer, Pooling, Normalize]
    np.testing.assert_allclose(model.encode(TEXTS), reference, atol=1e-6)


def test_absent_normalize_folder_loads(tiny_st_dir, reference, tmp_path):
    folder = tmp_path / "no-normalize-folder"
    shutil.copytree(tiny_st_dir, folder)
    if (folder / "2_Normalize").exists():
        shutil.rmtree(folder / "2_Normalize")
    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [Transformer, Pooling, Normalize]
    np.testing.assert_allclose(model.encode(TEXTS), reference, atol=1e-6)


def test_legacy_sentence_config_name(tiny_st_dir, tmp_path):
    folder = tmp_path / "legacy"
    shutil.copytree(tiny_st_dir, folder)
    (folder / "sentence_bert_config.json").rename(folder / "sentence_distilbert_config.json")
    config = read_json(folder / "sentence_distilbert_config.json")
    config["max_seq_length"] = 24
    (folder / "sentence_distilbert_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert SentenceTransformer(str(folder), device="cpu").max_seq_length == 24


def test_config_without_model_config_file(tiny_st_dir, reference, tmp_path):
    """Older sentence-transformers folders have no config_sentence_transformers.json."""
    folder = tmp_path / "old"
    shutil.copytree(tiny_st_dir, folder)
    (folder / "config_sentence_transformers.json").unlink()
    model = SentenceTransformer(str(folder), device="cpu")
    assert model.similarity_fn_name == "cosine"
    assert model.prompts == {"query": "", "document": ""}
    np.testing.assert_allclose(model.encode(TEXTS), reference, atol=1e-6)


def test_plain_hf_folder_gets_mean_pooling(tiny_bert_dir, hf_mean):
    with pytest.warns(UserWarning, match="mean pooling"):
        model = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    assert [type(m) for m in model] == [Transformer, Pooling]
    assert model[1].pooling_modes == ("mean",)
    assert model.max_seq_length == 64  # from max_position_embeddings / the tokenizer
    np.testing.assert_allclose(model.encode(TEXTS), hf_mean, atol=2e-5)


# -- atomic saves ----------------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise RuntimeError("disk full (simulated)")


@pytest.mark.parametrize("what", ["pooling", "model_card", "model_config"])
def test_failed_save_leaves_previous_folder_untouched(tiny_model, tmp_path, monkeypatch, what):
    parent = tmp_path / "parent"
    target = parent / "model"
    tiny_model.save(target)
    (target / "notes.txt").write_text("user file", encoding="utf-8")
    before = snapshot(target)

    if what == "pooling":
        monkeypatch.setattr(Pooling, "save", _boom)
    elif what == "model_card":
        monkeypatch.setattr("sentencekit.model_card.write_model_card", _boom)
    else:
        monkeypatch.setattr("sentencekit.format.write_model_config", _boom)
    other = SentenceTransformer(modules=list(tiny_model), device="cpu", similarity_fn_name="dot")
    with pytest.raises(RuntimeError, match="simulated"):
        other.save(target)

    assert snapshot(target) == before
    assert sorted(p.name for p in parent.iterdir()) == ["model"]  # no temp folders remain


def test_failed_save_to_new_folder_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    parent = tmp_path / "parent"
    parent.mkdir()
    monkeypatch.setattr(Pooling, "save", _boom)
    with pytest.raises(RuntimeError, match="simulated"):
        tiny_model.save(parent / "new-model")
    assert list(parent.iterdir()) == []


def test_save_to_an_existing_file_is_refused(tiny_model, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me", encoding="utf-8")
    with pytest.raises(OSError):
        tiny_model.save(target)
    assert target.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_save_needs_a_path(tiny_model):
    with pytest.raises(ValueError):
        tiny_model.save(None)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_model_can_be_pickled_and_deep_copied(tiny_model, reference, how):
    import copy
    import pickle

    clone = pickle.loads(pickle.dumps(tiny_model)) if how == "pickle" else copy.deepcopy(tiny_model)
    np.testing.assert_allclose(clone.encode(TEXTS), reference, atol=1e-6)
    assert clone.last_encode_info.num_inputs == len(TEXTS)


def test_save_over_a_folder_keeps_foreign_files_and_drops_stale_modules(tiny_model, tiny_bert_dir, tmp_path):
    """Like sentence-transformers, a save keeps what it does not own (notes, training checkpoints);
    unlike a plain overwrite, module folders of the previous model do not linger."""
    target = tmp_path / "out"
    dense_model = SentenceTransformer(
        modules=[Transformer(str(tiny_bert_dir)), Pooling(32, "mean"), Dense(32, 8)], device="cpu"
    )
    dense_model.save(target)
    assert (target / "2_Dense").is_dir()
    (target / "notes.txt").write_text("keep me")
    (target / "checkpoint-10").mkdir()
    (target / "checkpoint-10" / "trainer_state.json").write_text("{}")

    tiny_model.save(target)
    assert (target / "notes.txt").read_text() == "keep me"
    assert (target / "checkpoint-10" / "trainer_state.json").is_file()
    assert not (target / "2_Dense").exists()
    assert (target / "2_Normalize").is_dir()
    texts = ["hello world", "refund policy please"]
    np.testing.assert_allclose(SentenceTransformer(str(target), device="cpu").encode(texts),
                               tiny_model.encode(texts), atol=1e-6)


def test_fingerprint_ignores_tokenizer_call_state(tiny_st_dir):
    """Using a model must not change its identity (stored corpora would refuse it)."""
    from sentencekit.fingerprint import model_fingerprint

    fresh = SentenceTransformer(str(tiny_st_dir), device="cpu")
    used = SentenceTransformer(str(tiny_st_dir), device="cpu")
    used.encode(["hello world", "refund policy please"])
    assert model_fingerprint(fresh) == model_fingerprint(used)
    with torch.no_grad():
        next(used.parameters()).add_(1e-3)
    assert model_fingerprint(fresh) != model_fingerprint(used)
