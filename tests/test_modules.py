"""Unit tests of the pipeline modules: Pooling, Dense, Normalize, Router and StaticEmbedding.

Expected values are computed by hand (torch / numpy), never through the code under test.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file
from torch import nn

from sentencekit import SentenceTransformer
from sentencekit.modules import Dense, Normalize, Pooling, Router, StaticEmbedding, Transformer

try:  # tests/ is a package in this repository; fall back to a rootless conftest import
    from tests.conftest import build_tiny_bert
except ImportError:  # pragma: no cover
    from conftest import build_tiny_bert

# ---------------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------------

PAD_VALUE = 100.0  # padded positions carry a large value: any mode that reads them gives a wrong answer


@pytest.fixture()
def pool_inputs():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1],
                         [1, 1, 1, 0, 0],
                         [1, 1, 0, 0, 0]])
    emb = emb.masked_fill(mask.unsqueeze(-1) == 0, PAD_VALUE)
    return emb, mask


def _real(emb, mask, i):
    """The real (non-padded) token vectors of row i, as a float64 numpy array."""
    n = int(mask[i].sum())
    return emb[i, :n].double().numpy()


def hand_pool(emb, mask, mode):
    rows = []
    for i in range(emb.shape[0]):
        real = _real(emb, mask, i)
        n = real.shape[0]
        if mode == "cls":
            rows.append(real[0])
        elif mode == "mean":
            rows.append(real.sum(0) / n)
        elif mode == "max":
            rows.append(real.max(0))
        elif mode == "mean_sqrt_len_tokens":
            rows.append(real.sum(0) / np.sqrt(n))
        elif mode == "weightedmean":
            w = np.arange(1, n + 1, dtype=np.float64)[:, None]  # position weights 1..n
            rows.append((real * w).sum(0) / w.sum())
        elif mode == "lasttoken":
            rows.append(real[-1])
        else:
            raise AssertionError(mode)
    return np.stack(rows)


ALL_MODES = ["cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]


@pytest.mark.parametrize("mode", ALL_MODES)
def test_pooling_mode_matches_hand_computation(pool_inputs, mode):
    emb, mask = pool_inputs
    out = Pooling(4, pooling_mode=mode)({"token_embeddings": emb, "attention_mask": mask})
    got = out["sentence_embedding"]
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got.double().numpy(), hand_pool(emb, mask, mode), rtol=1e-5, atol=1e-5)


def test_pooling_modes_differ_on_padded_rows(pool_inputs):
    """Sanity check of the fixture: every mode gives a different vector, so the tests above can fail."""
    emb, mask = pool_inputs
    results = [hand_pool(emb, mask, m) for m in ALL_MODES]
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.allclose(results[i], results[j])


def test_pooling_lasttoken_and_mean_with_left_padding():
    emb = torch.arange(2 * 4 * 2, dtype=torch.float32).view(2, 4, 2)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    emb = emb.masked_fill(mask.unsqueeze(-1) == 0, PAD_VALUE)
    last = Pooling(2, "lasttoken")({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    torch.testing.assert_close(last, torch.stack([emb[0, 3], emb[1, 3]]))
    mean = Pooling(2, "mean")({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    torch.testing.assert_close(mean, torch.stack([emb[0, 2:].mean(0), emb[1].mean(0)]))


def test_pooling_without_attention_mask_uses_every_token():
    emb = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    out = Pooling(4, "mean")({"token_embeddings": emb})["sentence_embedding"]
    torch.testing.assert_close(out, emb.mean(dim=1))


def test_pooling_concatenates_in_sentence_transformers_order(pool_inputs):
    emb, mask = pool_inputs
    # given in a scrambled order; the output order is fixed: cls, max, mean, mean_sqrt, weightedmean, last
    scrambled = ["lasttoken", "mean", "weightedmean", "cls", "mean_sqrt_len_tokens", "max"]
    pooling = Pooling(4, pooling_mode=scrambled)
    assert pooling.get_sentence_embedding_dimension() == 24
    got = pooling({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    order = ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]
    expected = np.concatenate([hand_pool(emb, mask, m) for m in order], axis=1)
    assert got.shape == (3, 24)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pooling_two_modes_concatenated(pool_inputs):
    emb, mask = pool_inputs
    got = Pooling(4, ["mean", "cls"])({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    expected = np.concatenate([hand_pool(emb, mask, "cls"), hand_pool(emb, mask, "mean")], axis=1)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pooling_v5_boolean_flags_in_constructor(pool_inputs):
    emb, mask = pool_inputs
    pooling = Pooling(4, pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True,
                      pooling_mode_cls_token=True)
    assert pooling.pooling_modes == ("cls", "max")
    got = pooling({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    expected = np.concatenate([hand_pool(emb, mask, "cls"), hand_pool(emb, mask, "max")], axis=1)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pooling_unknown_mode_or_no_mode_is_refused():
    with pytest.raises(ValueError, match="median"):
        Pooling(4, "median")
    with pytest.raises(ValueError):
        Pooling(4, pooling_mode_mean_tokens=False)


def test_pooling_include_prompt_false_skips_prompt_tokens(pool_inputs):
    emb, mask = pool_inputs
    caller_mask = mask.clone()
    features = {"token_embeddings": emb, "attention_mask": caller_mask, "prompt_length": 2}
    got = Pooling(4, "mean", include_prompt=False)(features)["sentence_embedding"]
    expected = []
    for i in range(3):
        real = _real(emb, mask, i)
        # the first two tokens are the prompt; a row with nothing else pools to zeros
        expected.append(real[2:].mean(0) if len(real) > 2 else np.zeros(4))
    np.testing.assert_allclose(got.double().numpy(), np.stack(expected), rtol=1e-5, atol=1e-5)
    # the caller's mask is not modified, and the features dict keeps the same tensor
    assert torch.equal(caller_mask, mask)
    assert features["attention_mask"] is caller_mask
    # include_prompt=True ignores prompt_length
    with_prompt = Pooling(4, "mean", include_prompt=True)(
        {"token_embeddings": emb, "attention_mask": mask, "prompt_length": 2})["sentence_embedding"]
    np.testing.assert_allclose(with_prompt.double().numpy(), hand_pool(emb, mask, "mean"), rtol=1e-5,
                               atol=1e-5)
    assert not torch.allclose(with_prompt, got)


def test_pooling_cls_with_prompt_excluded_takes_first_non_prompt_token(pool_inputs):
    # sentence-transformers v6 (which we follow where v5 and v6 differ; measured identical by
    # benchmarks/st_compat.py): cls is the first token left in the mask once the prompt is masked out.
    # (v5 always took token 0.)
    emb, mask = pool_inputs
    got = Pooling(4, "cls", include_prompt=False)(
        {"token_embeddings": emb, "attention_mask": mask, "prompt_length": 2})["sentence_embedding"]
    torch.testing.assert_close(got[:2], emb[:2, 2])  # row 2 is all prompt: nothing left to pick


def test_pooling_include_prompt_false_with_left_padding():
    emb = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    got = Pooling(3, "mean", include_prompt=False)(
        {"token_embeddings": emb, "attention_mask": mask, "prompt_length": 1})["sentence_embedding"]
    expected = torch.stack([emb[0, 3:].mean(0), emb[1, 1:].mean(0)])
    torch.testing.assert_close(got, expected)


def _write_pooling_config(folder, config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_pooling_loads_old_five_key_v5_config(tmp_path, pool_inputs):
    folder = _write_pooling_config(tmp_path / "1_Pooling", {
        "word_embedding_dimension": 4,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": True,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    pooling = Pooling.load(folder)
    assert pooling.pooling_modes == ("max",)
    assert pooling.include_prompt is True
    assert pooling.word_embedding_dimension == 4
    emb, mask = pool_inputs
    got = pooling({"token_embeddings": emb, "attention_mask": mask})["sentence_embedding"]
    np.testing.assert_allclose(got.double().numpy(), hand_pool(emb, mask, "max"), rtol=1e-5, atol=1e-5)


def test_pooling_loads_full_v5_config(tmp_path):
    folder = _write_pooling_config(tmp_path / "p", {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": False,
    })
    pooling = Pooling.load(folder)
    assert pooling.pooling_modes == ("cls", "mean", "lasttoken")
    assert pooling.include_prompt is False
    assert pooling.get_sentence_embedding_dimension() == 96


def test_pooling_loads_v6_config(tmp_path):
    folder = _write_pooling_config(tmp_path / "p", {
        "embedding_dimension": 32, "pooling_mode": ["cls", "mean"], "include_prompt": True,
    })
    pooling = Pooling.load(folder)
    assert pooling.pooling_modes == ("cls", "mean")
    assert pooling.word_embedding_dimension == 32
    assert pooling.include_prompt is True
    assert pooling.get_sentence_embedding_dimension() == 64


def test_pooling_loads_v6_config_with_single_mode_string(tmp_path):
    folder = _write_pooling_config(tmp_path / "p", {
        "embedding_dimension": 8, "pooling_mode": "lasttoken", "include_prompt": False,
    })
    pooling = Pooling.load(folder)
    assert pooling.pooling_modes == ("lasttoken",)
    assert pooling.include_prompt is False


def test_pooling_config_without_dimension_names_the_file(tmp_path):
    folder = _write_pooling_config(tmp_path / "p", {"pooling_mode": "mean"})
    with pytest.raises(ValueError, match="word_embedding_dimension") as info:
        Pooling.load(folder)
    assert str(folder) in str(info.value)


def test_pooling_saves_v5_keys(tmp_path):
    Pooling(32, ["mean", "cls"], include_prompt=False).save(tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text(encoding="utf-8"))
    assert config == {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": False,
    }
    reloaded = Pooling.load(tmp_path / "out")
    assert reloaded.pooling_modes == ("cls", "mean")
    assert reloaded.include_prompt is False


# ---------------------------------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------------------------------


def _hand_dense(dense: Dense, x: torch.Tensor, activation) -> np.ndarray:
    w = dense.linear.weight.detach().double().numpy()
    b = dense.linear.bias.detach().double().numpy() if dense.linear.bias is not None else 0.0
    return activation(x.double().numpy() @ w.T + b)


@pytest.fixture()
def dense_input():
    return torch.randn(3, 6, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", ["torch.nn.modules.activation.Tanh", "torch.nn.Tanh"])
def test_dense_tanh_by_dotted_name(name, dense_input):
    torch.manual_seed(0)
    dense = Dense(6, 4, activation_function=name)
    assert isinstance(dense.activation, nn.Tanh)
    got = dense({"sentence_embedding": dense_input})["sentence_embedding"]
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got.detach().double().numpy(), _hand_dense(dense, dense_input, np.tanh),
                               rtol=1e-5, atol=1e-6)


def test_dense_identity_by_dotted_name(dense_input):
    torch.manual_seed(0)
    dense = Dense(6, 4, activation_function="torch.nn.Identity")
    assert isinstance(dense.activation, nn.Identity)
    got = dense({"sentence_embedding": dense_input})["sentence_embedding"]
    expected = _hand_dense(dense, dense_input, lambda v: v)
    np.testing.assert_allclose(got.detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.tanh(expected), expected)  # identity and tanh are told apart


def test_dense_default_activation_is_tanh():
    assert isinstance(Dense(2, 2).activation, nn.Tanh)


def test_dense_refuses_non_torch_activation_without_trust(monkeypatch, dense_input):
    fake = types.ModuleType("sk_test_activations")

    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    fake.Double = Double
    monkeypatch.setitem(sys.modules, "sk_test_activations", fake)
    with pytest.raises(ValueError, match="trust_remote_code"):
        Dense(6, 4, activation_function="sk_test_activations.Double")
    torch.manual_seed(0)
    dense = Dense(6, 4, activation_function="sk_test_activations.Double", trust_remote_code=True)
    got = dense({"sentence_embedding": dense_input})["sentence_embedding"]
    expected = _hand_dense(dense, dense_input, lambda v: 2 * v)
    np.testing.assert_allclose(got.detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "torchvision_fake.Tanh"])
def test_dense_refuses_arbitrary_dotted_paths(name):
    with pytest.raises(ValueError, match="trust_remote_code"):
        Dense(2, 2, activation_function=name)


@pytest.mark.parametrize("name", ["torch.load", "torch.nn.NoSuchActivation", "Tanh"])
def test_dense_refuses_torch_names_that_are_not_module_classes(name):
    with pytest.raises(ValueError):
        Dense(2, 2, activation_function=name)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_save_load_round_trip(tmp_path, dense_input, bias):
    torch.manual_seed(1)
    dense = Dense(6, 4, bias=bias, activation_function="torch.nn.modules.activation.Tanh")
    dense.save(tmp_path / "2_Dense")
    config = json.loads((tmp_path / "2_Dense" / "config.json").read_text(encoding="utf-8"))
    assert config == {"in_features": 6, "out_features": 4, "bias": bias,
                      "activation_function": "torch.nn.modules.activation.Tanh"}
    tensors = load_file(str(tmp_path / "2_Dense" / "model.safetensors"))
    assert set(tensors) == ({"linear.weight", "linear.bias"} if bias else {"linear.weight"})
    torch.testing.assert_close(tensors["linear.weight"], dense.linear.weight.detach())

    loaded = Dense.load(tmp_path / "2_Dense")
    assert isinstance(loaded.activation, nn.Tanh)
    assert loaded.linear.bias is None if not bias else loaded.linear.bias is not None
    a = dense({"sentence_embedding": dense_input})["sentence_embedding"]
    b = loaded({"sentence_embedding": dense_input})["sentence_embedding"]
    assert torch.equal(a, b)


def test_dense_identity_saved_name_round_trips(tmp_path):
    Dense(3, 2, activation_function=nn.Identity()).save(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text(encoding="utf-8"))
    assert config["activation_function"] == "torch.nn.modules.linear.Identity"
    assert isinstance(Dense.load(tmp_path / "d").activation, nn.Identity)


def test_dense_load_refuses_custom_activation_in_config(tmp_path):
    Dense(3, 2).save(tmp_path / "d")
    config_file = tmp_path / "d" / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["activation_function"] = "os.system"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="trust_remote_code"):
        Dense.load(tmp_path / "d")


# ---------------------------------------------------------------------------------------------------
# Normalize
# ---------------------------------------------------------------------------------------------------


def test_normalize_unit_rows():
    x = torch.tensor([[3.0, 4.0, 0.0], [1.0, -2.0, 2.0]])
    out = Normalize()({"sentence_embedding": x, "other": 1})
    torch.testing.assert_close(out["sentence_embedding"],
                               torch.tensor([[0.6, 0.8, 0.0], [1 / 3, -2 / 3, 2 / 3]]))
    assert out["other"] == 1


def test_normalize_zero_vector_stays_finite():
    out = Normalize()({"sentence_embedding": torch.zeros(1, 4)})["sentence_embedding"]
    assert torch.isfinite(out).all()
    assert torch.equal(out, torch.zeros(1, 4))


def test_normalize_loads_from_absent_folder(tmp_path):
    assert isinstance(Normalize.load(tmp_path / "does-not-exist"), Normalize)


# ---------------------------------------------------------------------------------------------------
# Router
# ---------------------------------------------------------------------------------------------------

TEXTS = ["how do i reset my password", "the cat sat on the mat", "refund", ""]


@pytest.fixture(scope="module")
def second_bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-seed1"), seed=1)


def hf_embed(folder, texts, mode):
    """Reference embeddings straight from transformers, pooled by hand."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            enc = tok([text], return_tensors="pt")
            hidden = model(**enc).last_hidden_state[0].double()
            rows.append(hidden.mean(0) if mode == "mean" else hidden[0])
    return torch.stack(rows).numpy()


@pytest.fixture(scope="module")
def router_model(tiny_bert_dir, second_bert_dir):
    query = [Transformer(str(tiny_bert_dir), max_seq_length=32), Pooling(32, "mean")]
    document = [Transformer(str(second_bert_dir), max_seq_length=32), Pooling(32, "cls")]
    router = Router.for_query_document(query, document)
    return SentenceTransformer(modules=[router], device="cpu")


@pytest.fixture(scope="module")
def router_expected(tiny_bert_dir, second_bert_dir):
    return hf_embed(tiny_bert_dir, TEXTS, "mean"), hf_embed(second_bert_dir, TEXTS, "cls")


def test_router_routes_query_and_document(router_model, router_expected):
    want_query, want_doc = router_expected
    q = router_model.encode_query(TEXTS)
    d = router_model.encode_document(TEXTS)
    assert q.shape == d.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(q, want_query, atol=1e-5)
    np.testing.assert_allclose(d, want_doc, atol=1e-5)
    assert not np.allclose(q, d, atol=1e-3)


def test_router_explicit_task_and_legacy_dict_inputs(router_model, router_expected):
    want_query, want_doc = router_expected
    np.testing.assert_allclose(router_model.encode(TEXTS, task="document"), want_doc, atol=1e-5)
    dict_inputs = [{"query": t} for t in TEXTS]
    np.testing.assert_allclose(router_model.encode(dict_inputs), want_query, atol=1e-5)


def test_router_unknown_route_is_a_clear_value_error(router_model):
    with pytest.raises(ValueError) as info:
        router_model.encode(TEXTS, task="summary")
    message = str(info.value)
    assert "summary" in message and "query" in message and "document" in message


def test_router_without_task_or_default_route_is_a_value_error(router_model):
    with pytest.raises(ValueError, match="encode_query"):
        router_model.encode(TEXTS)


def test_router_default_route(tiny_bert_dir, router_expected):
    query = [Transformer(str(tiny_bert_dir), max_seq_length=32), Pooling(32, "mean")]
    document = [Transformer(str(tiny_bert_dir), max_seq_length=32), Pooling(32, "max")]
    model = SentenceTransformer(modules=[Router.for_query_document(query, document, default_route="query")],
                                device="cpu")
    np.testing.assert_allclose(model.encode(TEXTS), router_expected[0], atol=1e-5)
    with pytest.raises(ValueError, match="default_route"):
        Router.for_query_document(query, document, default_route="nope")


def test_router_save_load_round_trip(router_model, tmp_path):
    out = tmp_path / "router"
    router_model.save(out)
    modules = json.loads((out / "modules.json").read_text(encoding="utf-8"))
    assert len(modules) == 1
    assert modules[0]["type"] == "sentence_transformers.models.Router"
    assert modules[0]["path"] == ""
    assert modules[0].get("kwargs") == ["task"]

    config = json.loads((out / "router_config.json").read_text(encoding="utf-8"))
    assert set(config) == {"types", "structure", "parameters"}
    assert set(config["structure"]) == {"query", "document"}
    assert len(config["structure"]["query"]) == 2 and len(config["structure"]["document"]) == 2
    for route in ("query", "document"):
        ids = config["structure"][route]
        assert [config["types"][i] for i in ids] == ["sentence_transformers.models.Transformer",
                                                     "sentence_transformers.models.Pooling"]
        for module_id in ids:
            assert (out / module_id).is_dir()
        assert (out / ids[0] / "sentence_bert_config.json").is_file()
        assert (out / ids[1] / "config.json").is_file()
    assert config["parameters"] == {"default_route": None, "allow_empty_key": True}

    reloaded = SentenceTransformer(str(out), device="cpu")
    assert isinstance(reloaded[0], Router)
    for fn in ("encode_query", "encode_document"):
        a = getattr(router_model, fn)(TEXTS)
        b = getattr(reloaded, fn)(TEXTS)
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_router_rejects_empty_routes():
    with pytest.raises(ValueError):
        Router({})


# ---------------------------------------------------------------------------------------------------
# StaticEmbedding
# ---------------------------------------------------------------------------------------------------

STATIC_VOCAB = ["[UNK]", "hello", "world", "cat", "dog", "sat", "on", "the", "mat", "refund"]


def make_wordlevel_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(STATIC_VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def ids_of(text):
    return [STATIC_VOCAB.index(w) if w in STATIC_VOCAB else 0 for w in text.split()]


@pytest.fixture(scope="module")
def static_weights():
    return np.random.default_rng(0).standard_normal((len(STATIC_VOCAB), 6)).astype(np.float32)


STATIC_TEXTS = ["hello world", "the cat sat on the mat", "dog", "refund refund hello"]


def test_static_embedding_is_mean_of_token_vectors(static_weights):
    model = SentenceTransformer(modules=[StaticEmbedding(make_wordlevel_tokenizer(), static_weights)],
                                device="cpu")
    got = model.encode(STATIC_TEXTS)
    expected = np.stack([static_weights[ids_of(t)].mean(0) for t in STATIC_TEXTS])
    assert got.shape == (4, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert model.get_sentence_embedding_dimension() == 6


def test_static_embedding_empty_text_is_zero_vector(static_weights):
    model = SentenceTransformer(modules=[StaticEmbedding(make_wordlevel_tokenizer(), static_weights)],
                                device="cpu")
    got = model.encode(["", "cat"])
    np.testing.assert_array_equal(got[0], np.zeros(6, dtype=np.float32))
    np.testing.assert_allclose(got[1], static_weights[3], rtol=1e-6)


def test_static_embedding_never_truncates(static_weights):
    model = SentenceTransformer(modules=[StaticEmbedding(make_wordlevel_tokenizer(), static_weights)],
                                device="cpu")
    long_text = " ".join(["cat", "dog"] * 500)
    got = model.encode([long_text])
    np.testing.assert_allclose(got[0], (static_weights[3] + static_weights[4]) / 2, rtol=1e-5, atol=1e-6)
    assert model.last_encode_info.num_truncated == 0


def test_static_embedding_needs_weights_or_dimension():
    with pytest.raises(ValueError):
        StaticEmbedding(make_wordlevel_tokenizer())
    static = StaticEmbedding(make_wordlevel_tokenizer(), embedding_dim=5)
    assert static.get_sentence_embedding_dimension() == 5


def test_static_embedding_save_load_round_trip(static_weights, tmp_path):
    model = SentenceTransformer(modules=[StaticEmbedding(make_wordlevel_tokenizer(), static_weights)],
                                device="cpu")
    out = tmp_path / "static"
    model.save(out)
    modules = json.loads((out / "modules.json").read_text(encoding="utf-8"))
    assert [(m["type"], m["path"]) for m in modules] == [("sentence_transformers.models.StaticEmbedding", "")]
    tensors = load_file(str(out / "model.safetensors"))
    assert list(tensors) == ["embedding.weight"]
    np.testing.assert_array_equal(tensors["embedding.weight"].numpy(), static_weights)
    assert (out / "tokenizer.json").is_file()

    reloaded = SentenceTransformer(str(out), device="cpu")
    assert isinstance(reloaded[0], StaticEmbedding)
    np.testing.assert_array_equal(reloaded.encode(STATIC_TEXTS), model.encode(STATIC_TEXTS))


def _write_model2vec(folder, embeddings, *, mapping=None, weights=None, config=None, modules_json=False):
    folder.mkdir(parents=True, exist_ok=True)
    make_wordlevel_tokenizer().save(str(folder / "tokenizer.json"))
    tensors = {"embeddings": embeddings}
    if mapping is not None:
        tensors["mapping"] = mapping
    if weights is not None:
        tensors["weights"] = weights
    save_numpy(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config if config is not None else {"normalize": True}),
                                        encoding="utf-8")
    if modules_json:  # what model2vec's own save_pretrained writes (no 1_Normalize folder)
        entries = [
            {"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"},
            {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        (folder / "modules.json").write_text(json.dumps(entries), encoding="utf-8")
    return folder


def _hand_model2vec(table, texts, normalize=True, drop_unk=False):
    rows = []
    for text in texts:
        ids = ids_of(text)
        if drop_unk:
            ids = [i for i in ids if i != 0]
        v = table[ids].astype(np.float64).mean(0)
        rows.append(v / np.linalg.norm(v) if normalize else v)
    return np.stack(rows)


def test_model2vec_folder_with_mapping_and_weights(tmp_path):
    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((4, 5)).astype(np.float32)  # a quantized vocabulary: 4 rows
    mapping = rng.integers(0, 4, size=len(STATIC_VOCAB)).astype(np.int64)
    weights = rng.uniform(0.5, 2.0, size=len(STATIC_VOCAB)).astype(np.float32)
    folder = _write_model2vec(tmp_path / "m2v", embeddings, mapping=mapping, weights=weights)

    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [StaticEmbedding, Normalize]
    table = embeddings[mapping] * weights[:, None]
    got = model.encode(STATIC_TEXTS)
    np.testing.assert_allclose(got, _hand_model2vec(table, STATIC_TEXTS), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_model2vec_folder_plain_embeddings_without_normalize(tmp_path):
    embeddings = np.random.default_rng(2).standard_normal((len(STATIC_VOCAB), 5)).astype(np.float32)
    folder = _write_model2vec(tmp_path / "m2v", embeddings, config={"normalize": False})
    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [StaticEmbedding]
    expected = _hand_model2vec(embeddings, STATIC_TEXTS, normalize=False)
    np.testing.assert_allclose(model.encode(STATIC_TEXTS), expected, rtol=1e-5, atol=1e-6)


def test_model2vec_drops_unknown_tokens_like_model2vec(tmp_path):
    embeddings = np.random.default_rng(3).standard_normal((len(STATIC_VOCAB), 5)).astype(np.float32)
    folder = _write_model2vec(tmp_path / "m2v", embeddings)
    model = SentenceTransformer(str(folder), device="cpu")
    texts = ["hello zzzunknown world", "cat qqq"]
    np.testing.assert_allclose(model.encode(texts), _hand_model2vec(embeddings, texts, drop_unk=True),
                               rtol=1e-5, atol=1e-6)


def test_model2vec_folder_with_its_own_modules_json(tmp_path):
    """Recent model2vec versions also write modules.json (StaticEmbedding at ".", a 1_Normalize entry
    without a folder) and a config.json that has model_type/architectures."""
    embeddings = np.random.default_rng(4).standard_normal((len(STATIC_VOCAB), 5)).astype(np.float32)
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "hidden_dim": 5, "normalize": True}
    folder = _write_model2vec(tmp_path / "m2v", embeddings, config=config, modules_json=True)
    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [StaticEmbedding, Normalize]
    np.testing.assert_allclose(model.encode(STATIC_TEXTS), _hand_model2vec(embeddings, STATIC_TEXTS),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:No sentence-transformers model found")
def test_model2vec_folder_with_real_model2vec_config(tmp_path):
    """model2vec's distill() writes config.json with model_type "model2vec"; older folders have no
    modules.json, so sentencekit must recognise them from config.json + model.safetensors."""
    embeddings = np.random.default_rng(5).standard_normal((len(STATIC_VOCAB), 5)).astype(np.float32)
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": "x",
              "apply_pca": 5, "hidden_dim": 5, "seq_length": 1000000, "normalize": True}
    folder = _write_model2vec(tmp_path / "m2v", embeddings, config=config)
    model = SentenceTransformer(str(folder), device="cpu")
    assert [type(m) for m in model] == [StaticEmbedding, Normalize]
    np.testing.assert_allclose(model.encode(STATIC_TEXTS), _hand_model2vec(embeddings, STATIC_TEXTS),
                               rtol=1e-5, atol=1e-6)


def test_model2vec_model_keeps_its_embeddings_after_save_and_load(tmp_path):
    embeddings = np.random.default_rng(6).standard_normal((len(STATIC_VOCAB), 5)).astype(np.float32)
    model = SentenceTransformer(str(_write_model2vec(tmp_path / "m2v", embeddings)), device="cpu")
    texts = ["hello zzzunknown world", "cat"]
    before = model.encode(texts)
    model.save(tmp_path / "saved")
    after = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(texts)
    np.testing.assert_allclose(after, before, atol=1e-6)
