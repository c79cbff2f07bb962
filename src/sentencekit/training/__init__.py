"""Training: trainers built on ``transformers.Trainer`` for embedders and rerankers.

Needs the ``train`` extra (``pip install sentencekit[train]``: datasets, accelerate).
"""

from sentencekit.training.args import (
    BaseTrainingArguments,
    CrossEncoderTrainingArguments,
    SentenceTransformerTrainingArguments,
)
from sentencekit.training.samplers import BatchSamplers, MultiDatasetBatchSamplers
from sentencekit.training.trainer import (
    BaseTrainer,
    CrossEncoderTrainer,
    SentenceTransformerTrainer,
    last_complete_checkpoint,
)

__all__ = [
    "BaseTrainer", "BaseTrainingArguments", "BatchSamplers", "CrossEncoderTrainer", "CrossEncoderTrainingArguments",
    "MultiDatasetBatchSamplers", "SentenceTransformerTrainer", "SentenceTransformerTrainingArguments",
    "last_complete_checkpoint",
]
