"""Training: trainers built on ``transformers.Trainer`` for embedders, sparse encoders, multi-vector models and
rerankers.

Needs the ``train`` extra (``pip install sentencekit[train]``: datasets, accelerate). Names are
imported on first use, so ``sentencekit.training.hard_negatives`` works without importing the trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BaseTrainingArguments": "args", "SentenceTransformerTrainingArguments": "args",
    "CrossEncoderTrainingArguments": "args", "SparseEncoderTrainingArguments": "args",
    "MultiVectorEncoderTrainingArguments": "args",
    "BatchSamplers": "samplers", "MultiDatasetBatchSamplers": "samplers",
    "BaseTrainer": "trainer", "SentenceTransformerTrainer": "trainer", "CrossEncoderTrainer": "trainer",
    "SparseEncoderTrainer": "trainer", "SparseEncoderDataCollator": "collator",
    "MultiVectorEncoderTrainer": "trainer", "MultiVectorEncoderDataCollator": "collator",
    "SpladeRegularizerWeightSchedulerCallback": "callbacks", "SchedulerType": "callbacks",
    "last_complete_checkpoint": "trainer",
    "mine_hard_negatives": "hard_negatives",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sentencekit.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sentencekit.training.{module}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
