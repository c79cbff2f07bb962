"""Data collators: rows of a dataset -> one training batch.

The bi-encoder collator tokenizes every input column with the model (prompts and router routes
applied) and yields ``{"features": [per-column features], "label": tensor}``; the multi-vector one also
records each column's task in its features. The cross-encoder
collator keeps the texts (``{"inputs": [per-column texts], "label": ...}``): its losses decide which
pairs to build (e.g. in-batch negatives) before tokenizing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from sentencekit.pipeline.prompts import prompted_inputs

logger = logging.getLogger(__name__)

# sentence-transformers 6.2's label columns, for every family: listwise reranking and distillation datasets
# name their per-document label lists "labels" / "scores" (e.g. a multi-vector model's teacher scores).
VALID_LABEL_COLUMNS = ("label", "labels", "score", "scores")
CROSS_ENCODER_LABEL_COLUMNS = VALID_LABEL_COLUMNS


def split_columns(row: dict[str, Any], valid_label_columns: Sequence[str] = VALID_LABEL_COLUMNS
                  ) -> tuple[list[str], str | None]:
    """Input columns (in order) and the label column of a row (the first of ``valid_label_columns`` it has:
    "label", "labels", "score" or "scores"), wherever it stands."""
    label = next((c for c in valid_label_columns if c in row), None)
    inputs = [c for c in row if c != label and c != "dataset_name"]
    return inputs, label


def labels_tensor(rows: list[dict[str, Any]], label: str | None) -> torch.Tensor | None:
    if label is None:
        return None
    values = [row[label] for row in rows]
    first = values[0]
    if isinstance(first, (list, tuple)) and len({len(v) for v in values}) > 1:
        return [list(v) for v in values]  # ragged label lists (per-query relevance lists) stay lists
    if isinstance(first, int) and not isinstance(first, bool):
        return torch.tensor(values, dtype=torch.long)  # class ids
    return torch.tensor(values, dtype=torch.float32)  # scores, 0/1 floats, teacher embeddings


def resolve_column_value(mapping: Any, dataset_name: str | None, column: str) -> Any:
    """A per-column setting given as one value, ``{column: v}``, ``{dataset: v}`` or
    ``{dataset: {column: v}}`` (the forms sentence-transformers accepts for prompts and routes)."""
    if mapping is None or isinstance(mapping, str):
        return mapping
    if not isinstance(mapping, dict) or not mapping:
        return None
    if dataset_name is not None and dataset_name in mapping:
        value = mapping[dataset_name]
        return value.get(column) if isinstance(value, dict) else value
    value = mapping.get(column)
    return None if isinstance(value, dict) else value


class SentenceTransformerDataCollator:
    """Tokenize the input columns of a batch of rows for a bi-encoder."""

    def __init__(self, model: Any, prompts: Any = None, router_mapping: Any = None,
                 valid_label_columns: Sequence[str] = VALID_LABEL_COLUMNS) -> None:
        self.model = model
        self.prompts = prompts
        self.router_mapping = router_mapping or {}
        self.valid_label_columns = tuple(valid_label_columns)

    def column_task(self, dataset_name: str | None, column: str, position: int) -> str | None:
        """The task (Router route) a column is tokenized and embedded for: ``router_mapping``'s."""
        return resolve_column_value(self.router_mapping, dataset_name, column)

    def tokenize_column(self, texts: list[Any], task: str | None) -> dict[str, Any]:
        """One column's features (the model's ``tokenize``, without the ``truncated`` flags)."""
        tokenized = self.model.tokenize(texts, **({"task": task} if task else {}))
        tokenized.pop("truncated", None)
        return tokenized

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        dataset_name = rows[0].get("dataset_name")
        columns, label = split_columns(rows[0], self.valid_label_columns)
        features = []
        for position, column in enumerate(columns):
            prompt = resolve_column_value(self.prompts, dataset_name, column)
            task = self.column_task(dataset_name, column, position)
            chat = self.model.engine.message_format  # a chat template: the prompt is a system message
            texts = prompted_inputs([row[column] for row in rows], prompt, chat)
            tokenized = self.tokenize_column(texts, task)
            if prompt and not self.model.engine.include_prompt and chat is None:
                tokenized["prompt_length"] = self.model.engine.prompt_length(prompt, task)
            features.append(tokenized)
        batch: dict[str, Any] = {"features": features, "label": labels_tensor(rows, label)}
        if dataset_name is not None:
            batch["dataset_name"] = dataset_name
        return batch


class SparseEncoderDataCollator(SentenceTransformerDataCollator):
    """Tokenize the input columns of a batch of rows for a sparse encoder: the bi-encoder collator (a
    ``SparseEncoder`` tokenizes like a ``SentenceTransformer``; Router routes come from ``router_mapping``),
    under sentence-transformers' sparse name."""


class MultiVectorEncoderDataCollator(SentenceTransformerDataCollator):
    """Tokenize the input columns of a batch of rows for a multi-vector (ColBERT) model, as
    sentence-transformers 6.2's ``MultiVectorEncoderDataCollator``: each column is tokenized for its task
    (``router_mapping``'s, else ``"query"`` for the first column and ``"document"`` for the others: the
    query / document lengths and query expansion follow it), and the task is recorded in the column's features
    (``features["task"]``) so that the losses embed it under the same task. ``max_length`` (training's, from
    ``MultiVectorEncoderTrainingArguments``): one length for every column, or ``{task: length}``; it replaces
    the model's own lengths for training batches only (queries with ``"fixed"`` expansion keep the expansion
    length, ``"min"`` expansion never goes below it)."""

    def __init__(self, model: Any, prompts: Any = None, router_mapping: Any = None,
                 valid_label_columns: Sequence[str] = VALID_LABEL_COLUMNS,
                 max_length: int | dict[str, int] | None = None) -> None:
        super().__init__(model, prompts=prompts, router_mapping=router_mapping, valid_label_columns=valid_label_columns)
        self.max_length = max_length
        expansion = getattr(model[0], "query_expansion", None)
        query_length = self.length_for("query")
        if expansion is not None and query_length is not None:
            if expansion["strategy"] == "fixed" and query_length != expansion["length"]:
                logger.warning("max_length=%s is ignored for queries: query_expansion fixes them to %d tokens.",
                               query_length, expansion["length"])
            elif expansion["strategy"] == "min" and query_length < expansion["length"]:
                logger.warning("max_length=%s is raised to %d for queries: query_expansion keeps them at least that "
                               "long.", query_length, expansion["length"])

    def length_for(self, task: str | None) -> int | None:
        """The ``max_length`` override of a column of ``task`` (``None``: the model's own length)."""
        if isinstance(self.max_length, dict):
            return self.max_length.get(task) if task is not None else None
        return self.max_length

    def column_task(self, dataset_name: str | None, column: str, position: int) -> str | None:
        task = super().column_task(dataset_name, column, position)
        return task or ("query" if position == 0 else "document")

    def tokenize_column(self, texts: list[Any], task: str | None) -> dict[str, Any]:
        tokenized = self.model.tokenize(texts, task=task, max_length=self.length_for(task))
        tokenized.pop("truncated", None)
        return {**tokenized, "task": task}


class CrossEncoderDataCollator:
    """Keep the texts of each input column; cross-encoder losses build and tokenize the pairs."""

    def __init__(self, valid_label_columns: Sequence[str] = CROSS_ENCODER_LABEL_COLUMNS) -> None:
        self.valid_label_columns = tuple(valid_label_columns)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        dataset_name = rows[0].get("dataset_name")
        columns, label = split_columns(rows[0], self.valid_label_columns)
        batch: dict[str, Any] = {"inputs": [[row[c] for row in rows] for c in columns],
                                 "label": labels_tensor(rows, label)}
        if dataset_name is not None:
            batch["dataset_name"] = dataset_name
        return batch
