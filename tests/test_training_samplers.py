"""Batch samplers: coverage, determinism per (seed, epoch), no duplicates, label groups, multi-dataset."""

from __future__ import annotations

import pytest
from datasets import Dataset

from sentencekit.training.samplers import (
    DefaultBatchSampler,
    GroupByLabelBatchSampler,
    MultiDatasetBatchSampler,
    MultiDatasetBatchSamplers,
    NoDuplicatesBatchSampler,
)


def flat(batches):
    return [i for b in batches for i in b]


def test_default_sampler_covers_every_row_once_and_is_deterministic():
    ds = Dataset.from_dict({"a": [str(i) for i in range(10)]})
    sampler = DefaultBatchSampler(ds, batch_size=3, seed=7)
    first = list(sampler)
    assert sorted(flat(first)) == list(range(10)) and [len(b) for b in first] == [3, 3, 3, 1]
    assert list(DefaultBatchSampler(ds, batch_size=3, seed=7)) == first  # same seed, same epoch
    sampler.set_epoch(1)
    assert list(sampler) != first and len(sampler) == 4
    assert [len(b) for b in DefaultBatchSampler(ds, batch_size=3, drop_last=True)] == [3, 3, 3]
    assert list(DefaultBatchSampler(ds, batch_size=4, shuffle=False)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_no_duplicates_sampler_keeps_texts_unique_per_batch():
    anchors = ["q1", "q1", "q2", "q3", "q3", "q4", "q5", "q6"]
    positives = ["p1", "p2", "p2", "p3", "p4", "p5", "p6", "p1"]
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives, "label": [1.0] * 8})
    batches = list(NoDuplicatesBatchSampler(ds, batch_size=3, seed=0))
    assert sorted(flat(batches)) == list(range(8))
    for batch in batches:
        texts = [anchors[i] for i in batch] + [positives[i] for i in batch]
        assert len(texts) == len(set(texts)), batch


def test_group_by_label_sampler():
    labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]
    ds = Dataset.from_dict({"text": [f"t{i}" for i in range(10)], "label": labels})
    batches = list(GroupByLabelBatchSampler(ds, batch_size=4, seed=1))
    for batch in batches:
        for label in {labels[i] for i in batch}:
            assert sum(labels[i] == label for i in batch) >= 2  # every label appears at least twice
    assert 9 not in flat(batches)  # label 3 occurs once: never sampled
    with pytest.raises(ValueError, match="even"):
        GroupByLabelBatchSampler(ds, batch_size=3)


@pytest.mark.parametrize("strategy", list(MultiDatasetBatchSamplers))
def test_multi_dataset_batches_never_mix_datasets(strategy):
    a = Dataset.from_dict({"x": [str(i) for i in range(6)]})
    b = Dataset.from_dict({"x": [str(i) for i in range(4)]})
    sampler = MultiDatasetBatchSampler([DefaultBatchSampler(a, 2), DefaultBatchSampler(b, 2)], [0, 6], strategy)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert all(i < 6 for i in batch) or all(i >= 6 for i in batch)
    if strategy == MultiDatasetBatchSamplers.PROPORTIONAL:
        assert sorted(flat(batches)) == list(range(10))
    else:
        assert len(batches) == 4  # two rounds: the smaller dataset has two batches
