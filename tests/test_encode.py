"""SentenceTransformer.encode(): output types and shapes, post-processing, batching, prompts, input
validation, truncation reports and thread safety, on a tiny random BERT.

Reference embeddings come straight from ``transformers`` (one text at a time, no padding) and are
pooled by hand.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer
from sentencekit.families.embedder import TruncationWarning
from sentencekit.modules import Pooling, Transformer

TEXTS = [
    "how do i get a refund",
    "the cat sat on the mat",
    "hello",
    "what is your return policy for a broken item please help",
    "weather in paris today is mild",
    "",
    "login",
    "cancel my subscription and reset my password thanks",
]
MAX_LEN = 48
ATOL = 2e-5


@pytest.fixture(scope="module")
def hf(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    return tok, model


def hf_tokens(hf, text, max_length=MAX_LEN):
    tok, model = hf
    enc = tok([text], return_tensors="pt", truncation=True, max_length=max_length)
    with torch.no_grad():
        return model(**enc).last_hidden_state[0].double().numpy()


def ref_embed(hf, texts, *, normalize=True, skip_first=0):
    rows = []
    for text in texts:
        tokens = hf_tokens(hf, text)
        v = tokens[skip_first:].mean(0)
        rows.append(v / np.linalg.norm(v) if normalize else v)
    return np.stack(rows)


@pytest.fixture(scope="module")
def model(tiny_st_dir):
    """Transformer(max_seq_length=48) + mean Pooling + Normalize, loaded once for read-only tests."""
    return SentenceTransformer(str(tiny_st_dir), device="cpu")


@pytest.fixture(scope="module")
def raw_model(tiny_bert_dir):
    """Transformer + mean Pooling, without Normalize."""
    return SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=MAX_LEN),
                                        Pooling(32, "mean")], device="cpu")


@pytest.fixture(scope="module")
def expected(hf):
    return ref_embed(hf, TEXTS)


@pytest.fixture(scope="module")
def expected_raw(hf):
    return ref_embed(hf, TEXTS, normalize=False)


# -- output types and shapes -------------------------------------------------------------------------


def test_list_gives_float32_numpy_matrix(model, expected):
    emb = model.encode(TEXTS)
    assert isinstance(emb, np.ndarray)
    assert emb.dtype == np.float32
    assert emb.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(emb, expected, atol=ATOL)


def test_single_string_gives_vector(model, expected):
    emb = model.encode(TEXTS[1])
    assert isinstance(emb, np.ndarray)
    assert emb.shape == (32,)
    np.testing.assert_allclose(emb, expected[1], atol=ATOL)


def test_numpy_array_of_strings_is_accepted(model, expected):
    emb = model.encode(np.array(TEXTS[:3]))
    np.testing.assert_allclose(emb, expected[:3], atol=ATOL)


def test_empty_list_gives_zero_rows(model):
    emb = model.encode([])
    assert isinstance(emb, np.ndarray)
    assert emb.shape == (0, 32)
    assert emb.dtype == np.float32
    tensor = model.encode([], convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == (0, 32)
    assert model.last_encode_info.num_inputs == 0


def test_convert_to_tensor(model, expected):
    emb = model.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(emb, torch.Tensor)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert tuple(emb.shape) == (len(TEXTS), 32)
    np.testing.assert_allclose(emb.numpy(), expected, atol=ATOL)
    single = model.encode(TEXTS[0], convert_to_tensor=True)
    assert isinstance(single, torch.Tensor) and tuple(single.shape) == (32,)


def test_convert_to_numpy_false_gives_list_of_tensors(model, expected):
    rows = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == len(TEXTS)
    assert all(isinstance(r, torch.Tensor) and tuple(r.shape) == (32,) for r in rows)
    np.testing.assert_allclose(torch.stack(rows).numpy(), expected, atol=ATOL)


def test_token_embeddings_are_trimmed_to_real_tokens(model, hf):
    tok = hf[0]
    rows = model.encode(TEXTS, output_value="token_embeddings")
    assert isinstance(rows, list) and len(rows) == len(TEXTS)
    for text, row in zip(TEXTS, rows):
        assert isinstance(row, torch.Tensor)
        n_tokens = len(tok(text)["input_ids"])
        assert tuple(row.shape) == (n_tokens, 32)
        np.testing.assert_allclose(row.double().numpy(), hf_tokens(hf, text), atol=ATOL)
    single = model.encode(TEXTS[2], output_value="token_embeddings")
    assert isinstance(single, torch.Tensor) and single.shape[1] == 32


def test_output_value_none_gives_all_features(model, expected):
    rows = model.encode(TEXTS, output_value=None)
    assert isinstance(rows, list) and len(rows) == len(TEXTS)
    for i, row in enumerate(rows):
        assert isinstance(row, dict)
        assert {"sentence_embedding", "token_embeddings", "attention_mask", "input_ids"} <= set(row)
        np.testing.assert_allclose(row["sentence_embedding"].numpy(), expected[i], atol=ATOL)
        assert row["token_embeddings"].shape[-1] == 32


def test_invalid_output_value_and_precision(model):
    with pytest.raises(ValueError, match="output_value"):
        model.encode(TEXTS, output_value="cls")
    with pytest.raises(ValueError, match="precision"):
        model.encode(TEXTS, precision="float16")


# -- normalisation, Matryoshka truncation, quantization ----------------------------------------------


def test_normalize_embeddings(raw_model, expected_raw):
    raw = raw_model.encode(TEXTS)
    np.testing.assert_allclose(raw, expected_raw, atol=ATOL)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)  # the model does not normalise
    normed = raw_model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(normed, expected_raw / np.linalg.norm(expected_raw, axis=1, keepdims=True),
                               atol=ATOL)


def test_truncate_dim_slices(raw_model, expected_raw):
    emb = raw_model.encode(TEXTS, truncate_dim=8)
    assert emb.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(emb, expected_raw[:, :8], atol=ATOL)


def test_truncate_dim_then_normalize_gives_unit_vectors(raw_model, expected_raw):
    emb = raw_model.encode(TEXTS, truncate_dim=8, normalize_embeddings=True)
    assert emb.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sliced = expected_raw[:, :8]
    np.testing.assert_allclose(emb, sliced / np.linalg.norm(sliced, axis=1, keepdims=True), atol=ATOL)


def test_model_level_truncate_dim(tiny_st_dir, expected):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu", truncate_dim=16)
    assert model.get_sentence_embedding_dimension() == 16
    emb = model.encode(TEXTS)
    assert emb.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(emb, expected[:, :16], atol=ATOL)  # sliced after the Normalize module
    assert model.encode([]).shape == (0, 16)
    assert model.encode(TEXTS, truncate_dim=4).shape == (len(TEXTS), 4)  # per-call value wins


def test_truncate_dim_validation(model, tiny_st_dir):
    with pytest.raises(ValueError, match="truncate_dim"):
        model.encode(TEXTS, truncate_dim=64)
    with pytest.raises(ValueError, match="truncate_dim"):
        model.encode(TEXTS, truncate_dim=0)
    with pytest.raises(ValueError, match="truncate_dim"):
        SentenceTransformer(str(tiny_st_dir), device="cpu", truncate_dim=33)


@pytest.mark.parametrize(("precision", "dtype", "width"), [
    ("float32", np.float32, 32), ("int8", np.int8, 32), ("uint8", np.uint8, 32),
    ("binary", np.int8, 4), ("ubinary", np.uint8, 4),
])
def test_precision_shapes_and_dtypes(model, precision, dtype, width):
    emb = model.encode(TEXTS, precision=precision)
    assert emb.dtype == dtype
    assert emb.shape == (len(TEXTS), width)
    empty = model.encode([], precision=precision)
    assert empty.dtype == dtype and empty.shape == (0, width)


def test_precision_values(model, expected):
    floats = model.encode(TEXTS)
    np.testing.assert_allclose(floats, expected, atol=ATOL)
    bits = np.packbits(floats > 0, axis=1)
    np.testing.assert_array_equal(model.encode(TEXTS, precision="ubinary"), bits)
    binary = model.encode(TEXTS, precision="binary")
    np.testing.assert_array_equal(binary.astype(np.int16), bits.astype(np.int16) - 128)
    # int8 / uint8: 256 buckets per dimension between this batch's min and max
    lo, hi = floats.min(0), floats.max(0)
    buckets = (floats - lo) / ((hi - lo) / 255)
    uint8 = model.encode(TEXTS, precision="uint8")
    np.testing.assert_array_equal(uint8, np.trunc(buckets).astype(np.uint8))
    assert uint8.min() == 0 and uint8.max() >= 254
    int8 = model.encode(TEXTS, precision="int8")
    np.testing.assert_array_equal(int8, (np.floor(buckets) - 128).astype(np.int8))  # v6: floor, then shift


def test_precision_with_convert_to_tensor(model):
    emb = model.encode(TEXTS, precision="ubinary", convert_to_tensor=True)
    assert isinstance(emb, torch.Tensor) and emb.dtype == torch.uint8 and tuple(emb.shape) == (len(TEXTS), 4)


# -- batching --------------------------------------------------------------------------------------


def test_batch_size_does_not_change_results_and_order_is_kept(model, expected):
    varied = [TEXTS[i] for i in (3, 2, 7, 5, 0, 6, 1, 4)]  # lengths deliberately unsorted
    want = expected[[3, 2, 7, 5, 0, 6, 1, 4]]
    one = model.encode(varied, batch_size=1)
    many = model.encode(varied, batch_size=32)
    three = model.encode(varied, batch_size=3)
    np.testing.assert_allclose(one, want, atol=ATOL)
    np.testing.assert_allclose(many, want, atol=ATOL)
    np.testing.assert_allclose(three, want, atol=ATOL)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_encode_switches_a_training_model_to_eval(tiny_st_dir, expected):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu")
    model.train()  # dropout on: results would be random
    torch.manual_seed(0)
    np.testing.assert_allclose(model.encode(TEXTS), expected, atol=ATOL)
    np.testing.assert_allclose(model.encode(TEXTS), expected, atol=ATOL)


def test_duplicate_inputs_get_identical_rows(model):
    emb = model.encode(["hello world", "refund", "hello world"], batch_size=2)
    np.testing.assert_allclose(emb[0], emb[2], atol=1e-6)
    assert not np.allclose(emb[0], emb[1])


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8"])
def test_invalid_batch_size(model, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(TEXTS, batch_size=batch_size)


def test_show_progress_bar(model, expected, capsys):
    emb = model.encode(TEXTS, batch_size=3, show_progress_bar=True)
    np.testing.assert_allclose(emb, expected, atol=ATOL)
    err = capsys.readouterr().err
    assert "Batches" in err


# -- prompts --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompted(tiny_st_dir):
    return SentenceTransformer(str(tiny_st_dir), device="cpu",
                               prompts={"query": "query: ", "document": "passage: ", "topic": "topic of "})


def test_explicit_prompt(model, hf):
    emb = model.encode(TEXTS[:3], prompt="query: ")
    np.testing.assert_allclose(emb, ref_embed(hf, ["query: " + t for t in TEXTS[:3]]), atol=ATOL)
    assert not np.allclose(emb, ref_embed(hf, TEXTS[:3]), atol=1e-3)


def test_prompt_name(prompted, hf):
    emb = prompted.encode(TEXTS[:3], prompt_name="topic")
    np.testing.assert_allclose(emb, ref_embed(hf, ["topic of " + t for t in TEXTS[:3]]), atol=ATOL)
    # an explicit prompt wins over prompt_name
    emb = prompted.encode(TEXTS[:3], prompt_name="topic", prompt="query: ")
    np.testing.assert_allclose(emb, ref_embed(hf, ["query: " + t for t in TEXTS[:3]]), atol=ATOL)


def test_no_prompt_by_default(prompted, expected):
    np.testing.assert_allclose(prompted.encode(TEXTS), expected, atol=ATOL)


def test_default_prompt_name(tiny_st_dir, hf):
    model = SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"topic": "topic of "},
                                default_prompt_name="topic")
    emb = model.encode(TEXTS[:3])
    np.testing.assert_allclose(emb, ref_embed(hf, ["topic of " + t for t in TEXTS[:3]]), atol=ATOL)
    # prompt="" switches the default off
    np.testing.assert_allclose(model.encode(TEXTS[:3], prompt=""), ref_embed(hf, TEXTS[:3]), atol=ATOL)


def test_default_prompt_name_must_exist(tiny_st_dir):
    with pytest.raises(ValueError, match="nope"):
        SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"topic": "t: "}, default_prompt_name="nope")


def test_unknown_prompt_name(prompted):
    with pytest.raises(ValueError) as info:
        prompted.encode(TEXTS, prompt_name="classification")
    assert "classification" in str(info.value) and "topic" in str(info.value)


def test_encode_query_and_document_use_their_prompts(prompted, hf):
    q = prompted.encode_query(TEXTS[:3])
    d = prompted.encode_document(TEXTS[:3])
    np.testing.assert_allclose(q, ref_embed(hf, ["query: " + t for t in TEXTS[:3]]), atol=ATOL)
    np.testing.assert_allclose(d, ref_embed(hf, ["passage: " + t for t in TEXTS[:3]]), atol=ATOL)
    # an explicit prompt_name / prompt overrides the route's prompt
    np.testing.assert_allclose(prompted.encode_query(TEXTS[:3], prompt_name="topic"),
                               ref_embed(hf, ["topic of " + t for t in TEXTS[:3]]), atol=ATOL)
    np.testing.assert_allclose(prompted.encode_document(TEXTS[:3], prompt="query: "), q, atol=ATOL)


def test_encode_query_without_prompts_is_plain_encode(model, expected):
    np.testing.assert_allclose(model.encode_query(TEXTS), expected, atol=ATOL)
    np.testing.assert_allclose(model.encode_document(TEXTS), expected, atol=ATOL)


def test_include_prompt_false_pools_only_the_text_tokens(tiny_bert_dir, hf):
    model = SentenceTransformer(modules=[Transformer(str(tiny_bert_dir), max_seq_length=MAX_LEN),
                                         Pooling(32, "mean", include_prompt=False)], device="cpu")
    prompt = "query: "
    # [CLS] + the prompt's tokens (without its [SEP]) are left out of the average
    n_prompt = len(hf[0](prompt)["input_ids"]) - 1
    texts = TEXTS[:4]
    emb = model.encode(texts, prompt=prompt, batch_size=2)
    want = ref_embed(hf, [prompt + t for t in texts], normalize=False, skip_first=n_prompt)
    np.testing.assert_allclose(emb, want, atol=ATOL)
    with_prompt = ref_embed(hf, [prompt + t for t in texts], normalize=False)
    assert not np.allclose(emb, with_prompt, atol=1e-3)
    # without a prompt nothing is skipped
    np.testing.assert_allclose(model.encode(texts), ref_embed(hf, texts, normalize=False), atol=ATOL)


# -- input validation ------------------------------------------------------------------------------


def test_none_input(model):
    with pytest.raises(TypeError):
        model.encode(None)


def test_non_string_element_names_the_index(model):
    with pytest.raises(TypeError, match=r"\[2\]"):
        model.encode(["a", "b", 3])
    with pytest.raises(TypeError, match=r"\[1\]"):
        model.encode(["a", None])


def test_nested_list_names_the_index(model):
    with pytest.raises(TypeError, match=r"\[1\]") as info:
        model.encode(["a", ["b", "c", "d"]])
    assert "nested" in str(info.value)


def test_empty_string_embeds(model, hf):
    emb = model.encode([""])
    assert emb.shape == (1, 32) and np.isfinite(emb).all()
    np.testing.assert_allclose(emb, ref_embed(hf, [""]), atol=ATOL)


def test_unknown_keyword_argument(model):
    with pytest.raises(ValueError, match="colour"):
        model.encode(TEXTS, colour="blue")


# -- truncation report -----------------------------------------------------------------------------


def _words(n):
    return " ".join(["cat"] * n)  # "cat" is one token: n words -> n + 2 tokens with [CLS]/[SEP]


def test_long_texts_warn_and_are_reported(model, hf):
    texts = ["short one", _words(80), "hello", _words(47), "refund"]
    with pytest.warns(TruncationWarning, match="2 of 5"):
        emb = model.encode(texts, batch_size=2)
    info = model.last_encode_info
    assert info.num_inputs == 5
    assert info.num_truncated == 2
    assert info.truncated_indices == (1, 3)
    assert info.max_seq_length == MAX_LEN
    # the truncated text is embedded from its first 48 tokens
    np.testing.assert_allclose(emb[1], ref_embed(hf, [_words(80)])[0], atol=ATOL)


def test_truncation_warning_points_at_the_caller(model):
    with pytest.warns(TruncationWarning) as record:
        model.encode([_words(60)])
    assert record[0].filename == __file__


def test_truncation_warning_from_encode_query_points_at_the_caller(model):
    with pytest.warns(TruncationWarning) as record:
        model.encode_query([_words(60)])
    assert record[0].filename == __file__


def test_texts_at_the_limit_do_not_warn(model):
    texts = ["hello", _words(MAX_LEN - 2), "a b c"]  # exactly 48 tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        model.encode(texts)
    info = model.last_encode_info
    assert info.num_inputs == 3 and info.num_truncated == 0 and info.truncated_indices == ()


def test_report_is_reset_by_the_next_call(model):
    with pytest.warns(TruncationWarning):
        model.encode([_words(60)])
    assert model.last_encode_info.num_truncated == 1
    model.encode(["short"])
    assert model.last_encode_info.num_truncated == 0


# -- thread safety ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")
def test_concurrent_encode_matches_single_threaded(model):
    inputs = [[TEXTS[(i + j) % len(TEXTS)] for j in range(3 + i)] for i in range(8)]
    inputs[5].append(_words(70))  # one thread truncates, the others do not
    single = [model.encode(texts, batch_size=4) for texts in inputs]
    results: list = [None] * 8
    infos: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            barrier.wait()
            for _ in range(3):
                results[i] = model.encode(inputs[i], batch_size=4)
                infos[i] = model.last_encode_info
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(8):
        np.testing.assert_allclose(results[i], single[i], atol=1e-5)
        # the truncation report is per thread
        assert infos[i].num_inputs == len(inputs[i])
        assert infos[i].num_truncated == (1 if i == 5 else 0)


def test_prompt_and_prompt_name_together_warn_and_the_prompt_wins(tiny_model):
    """sentence-transformers 6.2 warns and uses ``prompt`` when both are given; so do we."""
    tiny_model.prompts = {"query": "query: "}
    try:
        with pytest.warns(UserWarning, match="ignoring prompt_name"):
            both = tiny_model.encode(["a question"], prompt="passage: ", prompt_name="query")
        only = tiny_model.encode(["a question"], prompt="passage: ")
    finally:
        tiny_model.prompts = {}
    np.testing.assert_allclose(both, only, atol=1e-6)
