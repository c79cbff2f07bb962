"""SparseEncoder on a tiny random BertForMaskedLM: every output form of encode, max_active_dims, prompts,
order restoration, the truncation report, decode / similarity / sparsity / intersection, and bad input.
Expected values come from an independent SPLADE computation (transformers' AutoModelForMaskedLM, one text
at a time, no padding)."""

from __future__ import annotations

import pytest
import torch

from sentencekit import SparseEncoder
from sentencekit.pipeline.batching import TruncationWarning

TEXTS = ["how do i get a refund", "a", "the cat sat on the mat with my dog today please", "hello world",
         "reset password", "the weather in paris is mild today and the delivery is late"]


def splade_reference(folder, texts, max_length=64, activation="relu", strategy="max"):
    """log(1 + relu(MLM logits)) pooled over tokens, per text on its own (no padding at all)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            act = torch.log1p(torch.relu(model(**enc).logits[0]))
            if activation == "log1p_relu":
                act = torch.log1p(act)
            rows.append(act.max(dim=0).values if strategy == "max" else act.sum(dim=0))
    return torch.stack(rows)


@pytest.fixture(scope="module")
def model(tiny_mlm_dir):
    return SparseEncoder(str(tiny_mlm_dir), device="cpu")


@pytest.fixture(scope="module")
def reference(tiny_mlm_dir):
    return splade_reference(tiny_mlm_dir, TEXTS)


# -- what encode returns ------------------------------------------------------------------------------------
def test_default_output_is_a_stacked_sparse_coo_float32_tensor(model, reference):
    emb = model.encode(TEXTS, batch_size=2)
    vocab = model.tokenizer.vocab_size
    assert emb.layout == torch.sparse_coo and emb.dtype == torch.float32 and emb.shape == (len(TEXTS), vocab)
    assert emb.device == model.device
    torch.testing.assert_close(emb.to_dense(), reference, atol=1e-5, rtol=1e-5)
    assert model.get_embedding_dimension() == vocab


def test_mixed_lengths_come_back_in_input_order_equal_to_one_by_one(model):
    batch = model.encode(TEXTS, batch_size=2, convert_to_sparse_tensor=False)
    alone = torch.stack([model.encode(t, convert_to_sparse_tensor=False) for t in TEXTS])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


def test_dense_list_single_and_empty_forms(model, reference):
    dense = model.encode(TEXTS, convert_to_sparse_tensor=False)
    assert dense.layout == torch.strided and dense.shape == reference.shape
    rows = model.encode(TEXTS, convert_to_tensor=False)
    assert isinstance(rows, list) and len(rows) == len(TEXTS)
    assert all(r.layout == torch.sparse_coo and r.shape == (reference.shape[1],) for r in rows)
    torch.testing.assert_close(torch.stack([r.to_dense() for r in rows]), reference, atol=1e-5, rtol=1e-5)
    dense_rows = model.encode(TEXTS[:2], convert_to_tensor=False, convert_to_sparse_tensor=False)
    assert all(r.layout == torch.strided and r.dim() == 1 for r in dense_rows)
    one = model.encode(TEXTS[2])
    assert one.layout == torch.sparse_coo and one.shape == (reference.shape[1],)
    torch.testing.assert_close(one.to_dense(), reference[2], atol=1e-5, rtol=1e-5)
    empty = model.encode([])
    assert empty.layout == torch.sparse_coo and tuple(empty.shape) == (0,)
    assert model.encode([], convert_to_sparse_tensor=False).shape == (0,)
    assert model.encode([], convert_to_tensor=False) == []


def test_save_to_cpu_and_sentences_keyword(model):
    emb = model.encode(sentences=TEXTS[:2], save_to_cpu=True)
    assert emb.device.type == "cpu" and emb.shape[0] == 2
    with pytest.raises(TypeError, match="both"):
        model.encode(TEXTS[:1], sentences=TEXTS[:1])


def test_max_active_dims_keeps_each_rows_largest_weights(tiny_mlm_dir, reference):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu", max_active_dims=5)
    emb = model.encode(TEXTS, batch_size=4).to_dense()
    assert ((emb != 0).sum(dim=1) <= 5).all()
    for row, ref in zip(emb, reference):
        top = torch.topk(ref, 5).indices
        torch.testing.assert_close(row[top], ref[top], atol=1e-5, rtol=1e-5)
        assert float(row.sum()) == pytest.approx(float(ref[top].sum()), rel=1e-5)
    # the call's argument wins over the model's setting
    assert int((model.encode(TEXTS[:1], max_active_dims=2).to_dense() != 0).sum()) == 2
    assert SparseEncoder.sparsity(emb)["active_dims"] <= 5


def test_prompts_query_and_document(tiny_mlm_dir):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu", prompts={"query": "query: ", "document": "doc: "})
    text = "how do i get a refund"
    plain = lambda t: model.encode(t, convert_to_sparse_tensor=False)  # noqa: E731
    torch.testing.assert_close(model.encode_query(text, convert_to_sparse_tensor=False), plain("query: " + text))
    torch.testing.assert_close(model.encode_document(text, convert_to_sparse_tensor=False), plain("doc: " + text))
    torch.testing.assert_close(model.encode(text, prompt="passage: ", convert_to_sparse_tensor=False),
                               plain("passage: " + text))
    assert not torch.equal(plain(text), plain("query: " + text))
    with pytest.raises(ValueError, match="not found"):
        model.encode(text, prompt_name="nope")
    defaulted = SparseEncoder(str(tiny_mlm_dir), device="cpu", prompts={"query": "query: "},
                              default_prompt_name="query")
    torch.testing.assert_close(defaulted.encode(text, convert_to_sparse_tensor=False), plain("query: " + text))


def test_truncation_is_reported(tiny_mlm_dir):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
    model.max_seq_length = 6
    with pytest.warns(TruncationWarning, match="1 of 3"):
        model.encode(["a", TEXTS[2], "hello"])
    info = model.last_encode_info
    assert info.truncated_indices == (1,) and info.num_inputs == 3 and info.max_seq_length == 6


def test_decode_lists_terms_by_weight(model):
    emb = model.encode(TEXTS[:2])
    decoded = model.decode(emb)
    dense = emb.to_dense()
    assert len(decoded) == 2
    for terms, row in zip(decoded, dense):
        weights = [w for _, w in terms]
        assert weights == sorted(weights, reverse=True) and len(terms) == int((row != 0).sum())
        token, weight = terms[0]
        assert token == model.tokenizer.convert_ids_to_tokens(int(row.argmax())) and weight == pytest.approx(
            float(row.max()))
    top3 = model.decode(emb[0], top_k=3)
    assert top3 == decoded[0][:3] and isinstance(top3[0], tuple)
    assert model.decode(emb.to_dense()[1], top_k=2) == decoded[1][:2]
    with pytest.raises(ValueError, match="top_k"):
        model.decode(emb, top_k=0)


def test_similarity_defaults_to_dot_and_takes_sparse_dense_and_mixed(model):
    emb = model.encode(TEXTS[:3])
    dense = emb.to_dense()
    expected = dense @ dense.T
    assert model.similarity_fn_name == "dot"
    torch.testing.assert_close(model.similarity(emb, emb), expected)
    torch.testing.assert_close(model.similarity(emb, dense), expected)
    torch.testing.assert_close(model.similarity(dense, emb), expected)
    torch.testing.assert_close(model.similarity_pairwise(emb, emb), (dense * dense).sum(1))


def test_similarity_functions_give_the_dense_results(tiny_mlm_dir):
    from sentencekit import similarity as sim

    model = SparseEncoder(str(tiny_mlm_dir), device="cpu", max_active_dims=20)
    a, b = model.encode(TEXTS[:3]), model.encode(TEXTS[3:])
    da, db = a.to_dense(), b.to_dense()
    for name in ("cosine", "dot", "euclidean", "manhattan"):
        model.similarity_fn_name = name
        torch.testing.assert_close(model.similarity(a, b), sim.similarity_fn(name)(da, db), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.similarity_pairwise(a, b), sim.pairwise_similarity_fn(name)(da, db),
                                   atol=1e-4, rtol=1e-4)
    assert model.similarity_pairwise(a[0], b[0]).dim() == 0  # two vectors: one score, as for dense
    with pytest.raises(ValueError, match="maxsim"):
        model.similarity_fn_name = "maxsim"


def test_sparsity_and_intersection():
    a = torch.tensor([0.0, 2.0, 0.0, 1.0, 3.0])
    b = torch.tensor([[1.0, 0.5, 0.0, 0.0, 2.0], [0.0, 0.0, 4.0, 0.0, 0.0]])
    assert SparseEncoder.sparsity(a.to_sparse()) == {"active_dims": 3.0, "sparsity_ratio": pytest.approx(0.4)}
    assert SparseEncoder.sparsity(b) == {"active_dims": 2.0, "sparsity_ratio": pytest.approx(0.6)}
    assert SparseEncoder.sparsity(torch.zeros(0, 5)) == {"active_dims": 0.0, "sparsity_ratio": 1.0}
    shared = SparseEncoder.intersection(a.to_sparse(), b.to_sparse())
    assert shared.layout == torch.sparse_coo and shared.shape == (2, 5)
    assert shared.to_dense().tolist() == [[0.0, 1.0, 0.0, 0.0, 6.0], [0.0] * 5]  # products, > 0 only
    one = SparseEncoder.intersection(a, b[0])
    assert one.shape == (5,) and one.to_dense().tolist() == [0.0, 1.0, 0.0, 0.0, 6.0]
    with pytest.raises(ValueError, match="1-D"):
        SparseEncoder.intersection(b, a)


# -- settings and errors ------------------------------------------------------------------------------------
def test_chunked_splade_pooling_gives_the_same_embeddings(tiny_mlm_dir):
    model = SparseEncoder(str(tiny_mlm_dir), device="cpu")
    whole = model.encode(TEXTS, convert_to_sparse_tensor=False)
    assert model.splade_pooling_chunk_size is None
    model.splade_pooling_chunk_size = 3
    assert model[1].chunk_size == 3
    torch.testing.assert_close(model.encode(TEXTS, convert_to_sparse_tensor=False), whole)
    with pytest.raises(ValueError, match="chunk_size"):
        model.splade_pooling_chunk_size = 0


@pytest.mark.parametrize("bad, error, match", [
    (None, TypeError, "None"),
    (["ok", 3], TypeError, r"\[1\] is int"),
    ([["nested"]], TypeError, "nested"),
])
def test_bad_inputs_name_the_problem(model, bad, error, match):
    with pytest.raises(error, match=match):
        model.encode(bad)


def test_bad_arguments_raise(model, tiny_mlm_dir):
    with pytest.raises(ValueError, match="unexpected keyword"):
        model.encode(["a"], normalize_embeddings=True)
    with pytest.raises(ValueError, match="max_active_dims"):
        model.encode(["a"], max_active_dims=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="max_active_dims"):
        SparseEncoder(str(tiny_mlm_dir), max_active_dims=-3)
    with pytest.raises(ValueError, match="not both"):
        SparseEncoder(str(tiny_mlm_dir), processor_kwargs={}, tokenizer_kwargs={})
    with pytest.raises(TypeError):
        SparseEncoder(str(tiny_mlm_dir), None)  # keyword-only after the first, as in sentence-transformers 6.2
    with pytest.raises(ValueError, match="default_prompt_name"):
        SparseEncoder(str(tiny_mlm_dir), default_prompt_name="missing")


def test_encode_does_not_change_the_callers_data(model):
    texts = list(TEXTS)
    kwargs = {"task": None}
    model.encode(texts, **kwargs)
    assert texts == TEXTS and kwargs == {"task": None}
