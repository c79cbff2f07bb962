"""MultiVectorEncoder.encode / encode_query / encode_document on tiny random models: every output form, query
expansion (fixed, min, attend), per-task lengths, the skiplist, prompts, per-call token pooling, order
restoration, the truncation report, similarity and bad input. Expected rows come from an independent ColBERT
computation (transformers' AutoModel, one text at a time, the projection applied by hand)."""

from __future__ import annotations

import string
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sentencekit import MultiVectorEncoder
from sentencekit.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer
from sentencekit.pipeline.batching import TruncationWarning

TEXTS = ["how do i get a refund", "a", "the cat sat on the mat, with my dog today please!", "hello world",
         "reset password?", "the weather in paris is mild today and the delivery is late"]


def build(bert_dir, *, expansion=None, query_length=None, document_length=None, skiplist=(), seed=0):
    transformer = Transformer(str(bert_dir), query_length=query_length, document_length=document_length,
                              query_expansion=expansion)
    torch.manual_seed(seed)
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name="token_embeddings")
    return MultiVectorEncoder(modules=[transformer, dense, MultiVectorMask(list(skiplist)),
                                       Normalize("token_embeddings")], device="cpu")


def reference(model, bert_dir, texts, *, task, prompt=""):
    """Each text alone through AutoModel: expansion tokens appended by hand, the projection, the scoring mask,
    L2 normalisation."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(bert_dir))
    encoder = AutoModel.from_pretrained(str(bert_dir)).eval()
    t, weight = model[0], model[1].linear.weight.detach()
    skip = set(model[2].skip_ids) if task != "query" else set()
    expansion = t.query_expansion if task == "query" else None
    limit = t.max_length_for(task)
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(prompt + text, truncation=True, max_length=limit)["input_ids"]
            real = len(ids)
            if expansion is not None and real < expansion["length"]:
                ids = ids + [tokenizer.mask_token_id] * (expansion["length"] - real)
            attend = [1] * real + [int(expansion is not None and expansion["attend"])] * (len(ids) - real)
            hidden = encoder(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attend]),
                             token_type_ids=torch.zeros(1, len(ids), dtype=torch.long)).last_hidden_state[0]
            keep = torch.tensor([i not in skip for i in ids])
            rows.append(F.normalize(hidden @ weight.T, dim=-1)[keep])
    return rows


def assert_rows(got, expected, atol=1e-5):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert tuple(g.shape) == tuple(e.shape)
        torch.testing.assert_close(torch.as_tensor(g), e, atol=atol, rtol=atol)


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    return build(tiny_bert_dir, expansion={"strategy": "fixed", "length": 12}, document_length=24,
                 skiplist=string.punctuation)


# -- what encode returns ------------------------------------------------------------------------------------
def test_documents_are_lists_of_token_matrices_equal_to_the_reference(model, tiny_bert_dir):
    got = model.encode_document(TEXTS, batch_size=2)
    assert isinstance(got, list) and all(isinstance(r, torch.Tensor) and r.dtype == torch.float32 for r in got)
    assert all(r.device == model.device for r in got)
    assert_rows(got, reference(model, tiny_bert_dir, TEXTS, task="document"))
    # the skiplist drops the punctuation of documents: "mat," and "please!" lose 2 tokens
    assert len(got[2]) == len(model.tokenizer("the cat sat on the mat, with my dog today please!")["input_ids"]) - 2
    assert model.get_embedding_dimension() == 16


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")
def test_fixed_expansion_makes_every_query_exactly_its_length(model, tiny_bert_dir):
    got = model.encode_query(TEXTS, batch_size=4)
    assert {tuple(r.shape) for r in got} == {(12, 16)}
    assert_rows(got, reference(model, tiny_bert_dir, TEXTS, task="query"))
    # the query side keeps its punctuation (the skiplist is for documents)
    assert model.encode_query("reset password?").shape == (12, 16)


def test_min_expansion_and_attend(tiny_bert_dir):
    model = build(tiny_bert_dir, expansion={"strategy": "min", "attend": True, "length": 8}, query_length=20)
    got = model.encode_query(TEXTS)
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert [len(r) for r in got] == [max(n, 8) for n in lengths]  # the floor only: long queries keep their tokens
    assert_rows(got, reference(model, tiny_bert_dir, TEXTS, task="query"))


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")
def test_without_expansion_queries_are_cut_at_query_length(tiny_bert_dir):
    model = build(tiny_bert_dir, query_length=6)
    got = model.encode_query(TEXTS)
    assert max(len(r) for r in got) == 6
    assert_rows(got, reference(model, tiny_bert_dir, TEXTS, task="query"))


def test_output_forms(model):
    one = model.encode_document("hello world")
    assert isinstance(one, torch.Tensor) and one.shape == (4, 16)
    arrays = model.encode_document(TEXTS[:3], convert_to_numpy=True)
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
    np.testing.assert_allclose(arrays[0], model.encode_document(TEXTS[0]).numpy(), atol=1e-6)
    assert model.encode_document([]) == []
    assert model.encode([], convert_to_numpy=True) == []
    items = model.encode_query(TEXTS[:2], output_value=None)
    assert {"token_embeddings", "attention_mask", "input_ids", "query_expansion_positions"} <= set(items[0])
    assert items[0]["attention_mask"].dtype == torch.bool and items[0]["attention_mask"].all()  # expansion scored
    assert int(items[1]["query_expansion_positions"].sum()) == 12 - 3  # "a": [CLS] a [SEP] + 9 expansion tokens
    assert model.encode(sentences=["hello world"])[0].shape == (4, 16)
    positional = model.encode_query(["hello"], None, None, 8, False, "token_embeddings", True)  # ST's order
    np.testing.assert_allclose(positional[0], model.encode_query("hello").numpy(), atol=1e-6)


def test_normalize_embeddings_and_no_task(tiny_bert_dir):
    raw = MultiVectorEncoder(modules=[Transformer(str(tiny_bert_dir)), MultiVectorMask()], device="cpu")
    rows = raw.encode(TEXTS[:2])
    assert rows[0].shape[-1] == 32 and not torch.allclose(rows[0].norm(dim=-1), torch.ones(len(rows[0])))
    normed = raw.encode(TEXTS[:2], normalize_embeddings=True)
    torch.testing.assert_close(normed[0], F.normalize(rows[0], dim=-1))


def test_order_is_restored_and_batching_changes_nothing(model):
    batch = model.encode_document(TEXTS, batch_size=3)
    alone = [model.encode_document(t) for t in TEXTS]
    assert_rows(batch, alone, atol=1e-5)


def test_prompts_are_text_and_encode_query_picks_the_query_prompt(tiny_bert_dir):
    model = build(tiny_bert_dir, skiplist=string.punctuation)
    model.prompts = {"query": "query. ", "document": "passage. "}
    q = model.encode_query(["refund"])[0]
    assert len(q) == len(model.tokenizer("query. refund")["input_ids"])
    d = model.encode_document(["refund"])[0]  # "passage. " loses its "." to the punctuation skiplist
    assert len(d) == len(model.tokenizer("passage. refund")["input_ids"]) - 1
    assert_rows([model.encode_query("refund", prompt="")], [model.encode("refund", task="query")])


@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")
def test_per_call_token_pooling_pools_documents_only(model):
    pooling = HierarchicalTokenPooling(pool_factor=2)
    docs = model.encode_document(TEXTS, token_pooling=pooling)
    plain = model.encode_document(TEXTS)
    assert [len(d) for d in docs] == [1 + max((len(p) - 1) // 2, 1) if len(p) > 2 else len(p) for p in plain]
    assert all(torch.allclose(d.norm(dim=-1), torch.ones(len(d))) for d in docs)
    queries = model.encode_query(TEXTS, token_pooling=pooling)
    assert_rows(queries, model.encode_query(TEXTS))


def test_truncation_counts_content_cut_at_the_task_length(model):
    long = "the cat sat on the mat " * 8
    with pytest.warns(TruncationWarning, match=r"1 of 2 inputs.*max_seq_length=24"):
        docs = model.encode_document(["hello", long])
    assert len(docs[1]) == 24 and model.last_encode_info.truncated_indices == (1,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        model.encode_query(["hello", "how do i get a refund"])  # padded with expansion tokens: not truncation
    assert model.last_encode_info.num_truncated == 0
    with pytest.warns(TruncationWarning, match="max_seq_length=12"):
        model.encode_query(["a b c d e f g h i j k l m n"])
    assert model.last_encode_info.max_seq_length == 12


def test_similarity_is_maxsim_by_default_and_lazy(model):
    q, d = model.encode_query(TEXTS[:2]), model.encode_document(TEXTS)
    scores = model.similarity(q, d)
    assert scores.shape == (2, len(TEXTS)) and scores.dtype == torch.float32
    expected = torch.tensor([[float((qi @ di.T).max(dim=1).values.sum()) for di in d] for qi in q])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.similarity(q, d, length_normalize=True), expected / 12)
    torch.testing.assert_close(model.similarity_pairwise(q, d[:2]), expected.diagonal())
    fresh = MultiVectorEncoder(modules=list(model.network), device="cpu")
    assert fresh._similarity_fn_name is None and fresh.similarity_fn_name == "maxsim"
    fresh.similarity_fn_name = "meanmaxsim"
    torch.testing.assert_close(fresh.similarity(q, d), expected / 12)
    with pytest.raises(ValueError, match="training-time"):
        fresh.similarity_fn_name = "xtr"
    with pytest.raises(ValueError, match="maxsim"):
        fresh.similarity_fn_name = "cosine"


@pytest.mark.parametrize("bad, error, match", [
    ({"convert_to_tensor": True}, ValueError, "convert_to_tensor"),
    ({"output_value": "sentence_embedding"}, ValueError, "output_value"),
    ({"unknown_flag": 1}, ValueError, "unexpected keyword"),
    ({"batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_arguments_raise(model, bad, error, match):
    with pytest.raises(error, match=match):
        model.encode(["hello"], **bad)


def test_token_pooling_must_be_a_pooling(model):
    with pytest.raises(TypeError, match="token_pooling must be a token pooling module"):
        model.encode_document(["hello"], token_pooling=lambda e: e)


def test_bad_inputs_name_the_problem(model):
    with pytest.raises(TypeError, match=r"sentences\[1\] is int"):
        model.encode_document(["a", 3])
    with pytest.raises(TypeError, match="None"):
        model.encode_query(None)


def test_expansion_settings_are_checked(tiny_bert_dir):
    t = Transformer(str(tiny_bert_dir), query_length=8)
    with pytest.raises(ValueError, match="query_length=8 is smaller"):
        t.query_expansion = {"strategy": "fixed", "length": 16}
    with pytest.raises(ValueError, match="strategy"):
        t.query_expansion = {"strategy": "grow", "length": 8}
    with pytest.raises(ValueError, match="unknown keys"):
        t.query_expansion = {"strategy": "fixed", "length": 8, "size": 3}
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary"):
        t.query_expansion = {"strategy": "fixed", "length": 8, "token": "[NOPE]"}
    with pytest.raises(ValueError, match="positive int"):
        Transformer(str(tiny_bert_dir), query_expansion={"strategy": "fixed"})
    t.query_expansion = {"strategy": "min", "length": 8, "token": "[PAD]"}
    assert t.query_expansion == {"strategy": "min", "attend": False, "token": "[PAD]", "length": 8}


def test_a_mask_is_needed_to_score_expansion_tokens(tiny_bert_dir, caplog):
    transformer = Transformer(str(tiny_bert_dir), query_expansion={"strategy": "fixed", "length": 10})
    with caplog.at_level("WARNING"):
        model = MultiVectorEncoder(modules=[transformer], device="cpu")
    assert "no MultiVectorMask follows it" in caplog.text
    assert len(model.encode_query("hello")) == 3  # the expansion tokens are not scored without a mask


def test_keep_only_token_ids_restricts_documents_and_its_numpy_twin_agrees(tiny_bert_dir):
    from sentencekit.engines.numpy_ops import scoring_mask

    model = build(tiny_bert_dir)
    hello = model.tokenizer.convert_tokens_to_ids("hello")
    model[2].keep_only_token_ids = [hello]
    assert len(model.encode_document("hello world hello")) == 2  # only the two "hello" tokens are scored
    assert len(model.encode_query("hello world hello")) == 5  # queries keep every token
    assert model.similarity(model.encode_query(["hi"]), model.encode_document(["world"]))[0, 0] == -1e9  # none left
    ids = torch.tensor([[2, hello, 7, 3, 0]])
    features = {"input_ids": ids, "attention_mask": torch.tensor([[1, 1, 1, 1, 0]]),
                "query_expansion_positions": torch.tensor([[False, False, False, False, True]])}
    model[2].skip_ids = [7]
    for task in ("query", "document", None):
        expected = model[2](dict(features), task=task)["attention_mask"].numpy()
        got = scoring_mask(ids.numpy(), features["attention_mask"].numpy(),
                           features["query_expansion_positions"].numpy(), task, skip_ids=[7],
                           skiplist_tasks=["document"], keep_only_token_ids=[hello])
        np.testing.assert_array_equal(got, expected)


def test_expansion_without_attention_is_refused_on_flash_attention_2(tiny_bert_dir):
    t = Transformer(str(tiny_bert_dir))
    t.auto_model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="flash-attention-2"):
        t.query_expansion = {"strategy": "fixed", "length": 8}
    t.query_expansion = {"strategy": "fixed", "attend": True, "length": 8}  # attended tokens survive FA2


def test_a_converted_encoder_gets_the_same_seeded_projection_on_every_load(tiny_bert_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, second = (MultiVectorEncoder(str(tiny_bert_dir), device="cpu") for _ in range(2))
    torch.testing.assert_close(first[1].linear.weight, second[1].linear.weight)
    assert first.fingerprint() == second.fingerprint()  # an index built with it opens with the next load
    assert float(first[1].linear.weight.detach().abs().max()) <= 1 / first[1].linear.weight.shape[1] ** 0.5
