"""The model classes are ordinary classes on every backend: what a user sees of ``type``, subclasses,
signatures and pickling, and that every text is tokenized once per call."""

from __future__ import annotations

import inspect
import pickle
import shutil

import numpy as np
import pytest

from sentencekit import CrossEncoder, SentenceTransformer

TEXTS = ["How do I get a refund?", "Refunds are paid within five days of the return.", "hello", "a b c d e f"]
PAIRS = [("refund?", "Refunds take five days."), ("refund?", "The weather is mild."), ("a", "b c d")]
BACKENDS = ["torch", pytest.param("onnx", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("onnxruntime") is None, reason="onnxruntime"))]


@pytest.fixture()
def st_folder(tiny_st_dir, tmp_path):
    shutil.copytree(tiny_st_dir, tmp_path / "st")
    return tmp_path / "st"


@pytest.fixture()
def ce_folder(tiny_ce_dir, tmp_path):
    shutil.copytree(tiny_ce_dir, tmp_path / "ce")
    return tmp_path / "ce"


@pytest.mark.parametrize("backend", BACKENDS)
def test_type_is_the_class_on_every_backend(st_folder, ce_folder, backend):
    model = SentenceTransformer(str(st_folder), backend=backend)
    assert type(model) is SentenceTransformer and model.backend == backend
    reranker = CrossEncoder(str(ce_folder), backend=backend)
    assert type(reranker) is CrossEncoder and reranker.backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_subclasses_keep_their_methods_on_every_backend(st_folder, ce_folder, backend):
    class MyModel(SentenceTransformer):
        def encode(self, sentences, **kwargs):  # a user's override, wrapping the real encode
            return super().encode(sentences, **kwargs) * 2

        def domain(self) -> str:
            return "support"

    class MyReranker(CrossEncoder):
        def predict(self, sentences, **kwargs):
            return super().predict(sentences, **kwargs) + 1

    model = MyModel(str(st_folder), backend=backend)
    plain = SentenceTransformer(str(st_folder), backend=backend)
    assert type(model) is MyModel and model.domain() == "support"
    np.testing.assert_allclose(model.encode(TEXTS), 2 * plain.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(model.encode_query(TEXTS), 2 * plain.encode_query(TEXTS), atol=1e-6)  # goes through it
    reranker = MyReranker(str(ce_folder), backend=backend)
    plain_scores = CrossEncoder(str(ce_folder), backend=backend).predict(PAIRS)
    np.testing.assert_allclose(reranker.predict(PAIRS), plain_scores + 1, atol=1e-6)


def test_signatures_show_the_real_parameters():
    params = inspect.signature(SentenceTransformer).parameters
    assert list(params)[:4] == ["model_name_or_path", "modules", "device", "prompts"]
    assert {"truncate_dim", "model_kwargs", "backend", "compute_dtype"} <= set(params)
    assert not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
    ce = inspect.signature(CrossEncoder).parameters
    assert list(ce)[:4] == ["model_name_or_path", "num_labels", "max_length", "activation_fn"] and "backend" in ce
    encode = inspect.signature(SentenceTransformer.encode).parameters
    assert list(encode)[1:5] == ["sentences", "prompt_name", "prompt", "batch_size"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_models_pickle_with_their_settings(st_folder, ce_folder, backend):
    model = SentenceTransformer(str(st_folder), backend=backend, prompts={"query": "query: "})
    model.max_seq_length = 16
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is SentenceTransformer and copy.prompts["query"] == "query: " and copy.max_seq_length == 16
    np.testing.assert_allclose(copy.encode_query(TEXTS), model.encode_query(TEXTS), atol=1e-6)
    assert copy.fingerprint() == model.fingerprint()
    reranker = CrossEncoder(str(ce_folder), backend=backend)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(reranker)).predict(PAIRS), reranker.predict(PAIRS), atol=1e-6)


class _Counting:
    """Wraps a tokenizer and counts the texts it is asked to tokenize (everything else passes through)."""

    def __init__(self, inner):
        self._inner = inner
        self.texts = 0

    def _count(self, args):
        first = args[0]
        self.texts += 1 if isinstance(first, str) else len(first)

    def __call__(self, *args, **kwargs):
        self._count(args)
        return self._inner(*args, **kwargs)

    def encode(self, items, *args, **kwargs):
        self._count((items,))
        return self._inner.encode(items, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_every_text_is_tokenized_once_per_call_on_torch(st_folder):
    model = SentenceTransformer(str(st_folder))
    counting = _Counting(model[0].tokenizer)
    model[0].tokenizer = counting
    model.encode(TEXTS * 10, batch_size=4)
    assert counting.texts == len(TEXTS) * 10
    counting.texts = 0
    model.encode(TEXTS, prompt="query: ", batch_size=2)
    assert counting.texts == len(TEXTS)


def test_every_pair_is_tokenized_once_per_call_on_torch(ce_folder):
    reranker = CrossEncoder(str(ce_folder))
    counting = _Counting(reranker[0].tokenizer)
    reranker[0].tokenizer = counting
    reranker.predict(PAIRS * 5, batch_size=2)
    assert counting.texts == len(PAIRS) * 5


def test_every_text_is_tokenized_once_per_call_on_onnx(st_folder, ce_folder):
    pytest.importorskip("onnxruntime")
    model = SentenceTransformer(str(st_folder), backend="onnx")
    counting = _Counting(model.engine.tokenizer)
    model.engine._tokenizer = counting
    model.encode(TEXTS * 10, batch_size=4)
    assert counting.texts == len(TEXTS) * 10
    reranker = CrossEncoder(str(ce_folder), backend="onnx")
    counting = _Counting(reranker.engine.tokenizer)
    reranker.engine._tokenizer = counting
    reranker.predict(PAIRS * 5, batch_size=2)
    assert counting.texts == len(PAIRS) * 5


def test_torch_modules_are_reachable_and_refused_clearly_elsewhere(st_folder):
    model = SentenceTransformer(str(st_folder))
    assert len(model) == len(list(model)) == 3 and type(model[0]).__name__ == "Transformer"
    features = model.tokenize(["hello world"])
    features.pop("truncated")
    assert model(features)["sentence_embedding"].shape == (1, 32)
    assert sum(p.numel() for p in model.parameters()) > 0 and model.to("cpu") is model
    pytest.importorskip("onnxruntime")
    onnx = SentenceTransformer(str(st_folder), backend="onnx")
    with pytest.raises(TypeError, match="backend='torch' to train"):
        onnx[0]
    with pytest.raises(TypeError, match="backend='torch'"):
        onnx.save(str(st_folder) + "-copy")


def test_unknown_backend_names_the_choices(st_folder):
    with pytest.raises(ValueError, match="Unknown backend 'tensorrt'; choose from torch, onnx"):
        SentenceTransformer(str(st_folder), backend="tensorrt")


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_ids_run_without_tokenizing_again(st_folder, backend):
    from sentencekit.engines.protocol import Tokenized

    model = SentenceTransformer(str(st_folder), backend=backend)
    tokenizer = model[0].tokenizer if backend == "torch" else model.tokenizer
    ids = [tokenizer(t)["input_ids"] if backend == "torch" else tokenizer.encode([t]).ids[0].tolist() for t in TEXTS]
    np.testing.assert_allclose(model.encode(Tokenized.from_ids(ids)), model.encode(TEXTS), atol=1e-5)
    with pytest.raises(ValueError, match="has 95 ids, more than max_seq_length=48"):
        model.encode(Tokenized.from_ids([list(range(5, 100))]))


def test_models_are_truthy_and_take_their_own_eval_mode(st_folder, ce_folder):
    model = SentenceTransformer(str(st_folder))
    reference = model.encode(TEXTS)
    model[0].auto_model.train()  # only an inner module in train mode (dropout on): encode still evaluates
    np.testing.assert_allclose(model.encode(TEXTS), reference, atol=1e-6)
    assert not model[0].auto_model.training and bool(model)
    pytest.importorskip("onnxruntime")
    assert bool(SentenceTransformer(str(st_folder), backend="onnx"))
    assert bool(CrossEncoder(str(ce_folder), backend="onnx"))


def test_torch_activation_on_the_onnx_backend(ce_folder):
    pytest.importorskip("onnxruntime")
    import torch

    onnx = CrossEncoder(str(ce_folder), backend="onnx")
    np.testing.assert_allclose(onnx.predict(PAIRS, activation_fn=torch.nn.Sigmoid()), onnx.predict(PAIRS), atol=1e-6)


def test_bad_dict_and_bytes_inputs_are_refused(st_folder, ce_folder):
    model = SentenceTransformer(str(st_folder))
    with pytest.raises(TypeError, match="dict with 2 key"):
        model.encode({"q1": "refund", "q2": "hello world"})
    with pytest.raises(TypeError, match="decode it to a str"):
        model.encode(b"hello")
    reranker = CrossEncoder(str(ce_folder))
    with pytest.raises(TypeError, match=r"sentences\[0\] is a tuple that has 3 elements"):
        reranker.predict([("a", "b", "c")])


def test_a_cross_encoder_from_an_embedding_model_refuses_to_score_with_its_new_head(st_folder):
    from sentencekit.pipeline.predict import UntrainedHeadError

    model = CrossEncoder(str(st_folder))  # loading stays possible (training starts here)
    with pytest.raises(UntrainedHeadError, match="embedding model without a trained classification head"):
        model.predict(("a", "b"))


def test_empty_modules_json_is_a_clear_format_error(tmp_path):
    from sentencekit.files import ModelFormatError

    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(ModelFormatError, match="lists no modules"):
        SentenceTransformer(str(tmp_path))


def test_save_pretrained_takes_the_name_positionally(st_folder, tmp_path):
    model = SentenceTransformer(str(st_folder))
    model.save_pretrained(str(tmp_path / "out"), "my-model")
    assert "my-model" in (tmp_path / "out" / "README.md").read_text()
    assert model._first_module() is model[0] and model._last_module() is model[-1]
    assert model.get_backend() == "torch" and model.get_max_seq_length() == model.max_seq_length
