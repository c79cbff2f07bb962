"""Training arguments: ``transformers.TrainingArguments`` plus what sentence-transformers users set
(prompts, batch samplers, router mapping, per-module learning rates)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments
from transformers import __version__ as transformers_version

from sentencekit.training.samplers import BatchSamplers, MultiDatasetBatchSamplers

_TRANSFORMERS_5 = int(transformers_version.split(".")[0]) >= 5

if _TRANSFORMERS_5:

    @dataclass
    class _Arguments(TrainingArguments):
        # transformers 5 dropped warmup_ratio (warmup_steps < 1 is a ratio now); users still pass it.
        warmup_ratio: float | None = field(default=None, metadata={"help": "Warm-up as a fraction of steps."})

else:  # pragma: no cover - transformers 4 still has warmup_ratio
    _Arguments = TrainingArguments


@dataclass
class BaseTrainingArguments(_Arguments):
    """Shared by both model families. Extra fields:

    - ``prompts``: a string for every column, ``{column: prompt}``, ``{dataset: prompt}`` or
      ``{dataset: {column: prompt}}``;
    - ``batch_sampler``: ``"batch_sampler"`` (default), ``"no_duplicates"`` (no repeated text in a batch:
      in-batch negatives stay negative), ``"group_by_label"`` (for batch-triplet losses);
    - ``multi_dataset_batch_sampler``: ``"proportional"`` (default) or ``"round_robin"``;
    - ``router_mapping``: ``{column: route}`` or ``{dataset: {column: route}}`` for Router models;
    - ``learning_rate_mapping``: ``{parameter-name regex: learning rate}``.

    >>> args = SentenceTransformerTrainingArguments(output_dir="out", num_train_epochs=1,
    ...                                             batch_sampler="no_duplicates")   # doctest: +SKIP
    """

    prompts: Any = field(default=None, metadata={"help": "Prompts per column and/or dataset."})
    batch_sampler: Any = field(default=BatchSamplers.BATCH_SAMPLER, metadata={"help": "Batch sampler."})
    multi_dataset_batch_sampler: Any = field(default=MultiDatasetBatchSamplers.PROPORTIONAL,
                                             metadata={"help": "How batches from several datasets mix."})
    router_mapping: Any = field(default_factory=dict, metadata={"help": "Column -> Router route."})
    learning_rate_mapping: Any = field(default_factory=dict, metadata={"help": "Param regex -> learning rate."})

    def __post_init__(self) -> None:
        if _TRANSFORMERS_5 and self.warmup_ratio:
            if self.warmup_steps:
                raise ValueError("Pass warmup_ratio or warmup_steps, not both.")
            self.warmup_steps, self.warmup_ratio = self.warmup_ratio, None
        # Text columns must reach the collator; sentence-transformers models have no `forward` signature
        # the Trainer could filter columns by.
        self.remove_unused_columns = False
        self.prediction_loss_only = True
        super().__post_init__()
        if isinstance(self.batch_sampler, str):
            self.batch_sampler = BatchSamplers(self.batch_sampler)
        if isinstance(self.multi_dataset_batch_sampler, str):
            self.multi_dataset_batch_sampler = MultiDatasetBatchSamplers(self.multi_dataset_batch_sampler)
        self.router_mapping = self.router_mapping or {}
        self.learning_rate_mapping = self.learning_rate_mapping or {}


@dataclass
class SentenceTransformerTrainingArguments(BaseTrainingArguments):
    """Arguments for :class:`~sentencekit.training.SentenceTransformerTrainer`."""


@dataclass
class CrossEncoderTrainingArguments(BaseTrainingArguments):
    """Arguments for :class:`~sentencekit.training.CrossEncoderTrainer`."""


@dataclass
class SparseEncoderTrainingArguments(BaseTrainingArguments):
    """Arguments for :class:`~sentencekit.training.SparseEncoderTrainer`: exactly the shared ones (as in
    sentence-transformers 6.2). For inference-free SPLADE (a ``Router``), route the columns with
    ``router_mapping={"query": "query", "answer": "document"}`` and give the static query weights their own
    learning rate with ``learning_rate_mapping={r"SparseStaticEmbedding\\.*": 1e-3}``."""


@dataclass
class MultiVectorEncoderTrainingArguments(BaseTrainingArguments):
    """Arguments for :class:`~sentencekit.training.MultiVectorEncoderTrainer` (sentence-transformers 6.2's): the
    shared ones plus ``max_length``, the token length training batches (and evaluation-loss batches) are
    tokenized to: an ``int`` for every column, or ``{"query": n, "document": m}`` (keyed by the columns' tasks:
    the first column is ``"query"``, the others ``"document"``, unless ``router_mapping`` says otherwise);
    ``None`` (default): the model's own ``query_length`` / ``document_length`` / ``max_seq_length``. The
    model keeps its lengths (evaluators, inference and the saved model use them). Queries under ``"fixed"``
    query expansion keep the expansion length; under ``"min"`` it is the floor. Raises ``ValueError`` for a
    length that is not a positive integer."""

    max_length: Any = field(default=None, metadata={"help": "Token length of training batches: an int, or "
                                                            "{'query': n, 'document': m}."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.max_length, str):  # from a command line / JSON config
            self.max_length = json.loads(self.max_length)
        lengths = self.max_length.values() if isinstance(self.max_length, dict) else [self.max_length]
        if self.max_length is not None and any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                                               for v in lengths):
            raise ValueError(f"max_length must be a positive int, a {{task: positive int}} dict such as "
                             f"{{'query': 32, 'document': 256}}, or None; got {self.max_length!r}.")
