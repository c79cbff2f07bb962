"""Batch samplers: which rows form a batch. Deterministic per (seed, epoch), so a resumed run sees the
same batches as an uninterrupted one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any

import torch


class BatchSamplers(str, Enum):
    BATCH_SAMPLER = "batch_sampler"
    NO_DUPLICATES = "no_duplicates"
    GROUP_BY_LABEL = "group_by_label"


class MultiDatasetBatchSamplers(str, Enum):
    ROUND_ROBIN = "round_robin"
    PROPORTIONAL = "proportional"


class DefaultBatchSampler:
    """Shuffled batches of ``batch_size`` indices (``shuffle=False`` for evaluation).

    >>> list(DefaultBatchSampler(list(range(5)), batch_size=2, shuffle=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, dataset: Sequence[Any], batch_size: int, drop_last: bool = False,
                 valid_label_columns: Sequence[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0, shuffle: bool = True) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.valid_label_columns = list(valid_label_columns or ["label", "score"])
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(n, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class NoDuplicatesBatchSampler(DefaultBatchSampler):
    """Batches in which no text appears twice (across all input columns), so in-batch negatives of
    MultipleNegativesRankingLoss are never copies of a positive."""

    def _all_texts(self) -> list[set[str]]:
        # Read the text columns once, column-wise (row access on an Arrow dataset is slow).
        columns = [c for c in _columns(self.dataset) if c not in self.valid_label_columns and c != "dataset_name"]
        if hasattr(self.dataset, "column_names"):
            values = [self.dataset[c] for c in columns]
        else:
            values = [[row[c] for row in self.dataset] for c in columns]
        return [{str(col[i]) for col in values} for i in range(len(self.dataset))]

    def __iter__(self) -> Iterator[list[int]]:
        if not hasattr(self, "_texts"):
            self._texts = self._all_texts()
        remaining = self._order()
        while remaining:
            batch, seen, rest = [], set(), []
            for idx in remaining:
                texts = self._texts[idx]
                if len(batch) < self.batch_size and not (texts & seen):
                    batch.append(idx)
                    seen |= texts
                else:
                    rest.append(idx)
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch
            remaining = rest


class GroupByLabelBatchSampler(DefaultBatchSampler):
    """Batches holding several rows of each label (at least 2), as batch-triplet losses need."""

    def __init__(self, dataset: Sequence[Any], batch_size: int, drop_last: bool = False,
                 valid_label_columns: Sequence[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0, shuffle: bool = True) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed, shuffle)
        if batch_size % 2:
            raise ValueError("GroupByLabelBatchSampler needs an even batch_size.")
        column = next((c for c in self.valid_label_columns if c in _columns(dataset)), None)
        if column is None:
            raise ValueError(f"GroupByLabelBatchSampler needs a label column ({self.valid_label_columns}).")
        labels = dataset[column] if hasattr(dataset, "column_names") else [row[column] for row in dataset]
        groups: dict[Any, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            groups[label].append(i)
        self.groups = {k: v for k, v in groups.items() if len(v) >= 2}
        if not self.groups:
            raise ValueError("GroupByLabelBatchSampler: no label occurs at least twice.")

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        chunks = []
        for indices in self.groups.values():
            perm = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
            usable = len(perm) - len(perm) % 2
            chunks.extend(perm[i : i + 2] for i in range(0, usable, 2))  # pairs of one label
        order = torch.randperm(len(chunks), generator=generator).tolist()
        flat = [i for j in order for i in chunks[j]]
        for start in range(0, len(flat), self.batch_size):
            batch = flat[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = sum(len(v) - len(v) % 2 for v in self.groups.values())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class MultiDatasetBatchSampler:
    """Batches from several datasets laid end to end (a ``ConcatDataset``); each batch comes from one
    dataset. ``proportional`` draws datasets in proportion to their batch counts, ``round_robin``
    alternates until the smallest is exhausted."""

    def __init__(self, samplers: list[DefaultBatchSampler], offsets: list[int],
                 strategy: MultiDatasetBatchSamplers, seed: int = 0) -> None:
        self.samplers, self.offsets, self.strategy, self.seed = samplers, offsets, strategy, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        iterators = [iter(s) for s in self.samplers]
        if self.strategy == MultiDatasetBatchSamplers.ROUND_ROBIN:
            rounds = min(len(s) for s in self.samplers)
            sequence = [i for _ in range(rounds) for i in range(len(self.samplers))]
        else:
            sequence = [i for i, s in enumerate(self.samplers) for _ in range(len(s))]
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            sequence = [sequence[j] for j in torch.randperm(len(sequence), generator=generator).tolist()]
        for i in sequence:
            batch = next(iterators[i], None)
            if batch is not None:
                yield [idx + self.offsets[i] for idx in batch]

    def __len__(self) -> int:
        if self.strategy == MultiDatasetBatchSamplers.ROUND_ROBIN:
            return min(len(s) for s in self.samplers) * len(self.samplers)
        return sum(len(s) for s in self.samplers)


def _columns(dataset: Any) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if names is not None:
        return list(names)
    return list(dataset[0].keys()) if len(dataset) else []
