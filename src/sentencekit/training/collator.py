"""Data collators: rows of a dataset -> one training batch.

The bi-encoder collator tokenizes every input column with the model (prompts and router routes
applied) and yields ``{"features": [per-column features], "label": tensor}``. The cross-encoder
collator keeps the texts (``{"inputs": [per-column texts], "label": ...}``): its losses decide which
pairs to build (e.g. in-batch negatives) before tokenizing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sentencekit.pipeline.prompts import apply_prompt

VALID_LABEL_COLUMNS = ("label", "score")
# Rerankers' listwise datasets name their per-document label lists "labels" / "scores".
CROSS_ENCODER_LABEL_COLUMNS = ("label", "labels", "score", "scores")


def split_columns(row: dict[str, Any], valid_label_columns: Sequence[str] = VALID_LABEL_COLUMNS
                  ) -> tuple[list[str], str | None]:
    """Input columns (in order) and the label column of a row: "label" or "score", wherever it stands."""
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

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        dataset_name = rows[0].get("dataset_name")
        columns, label = split_columns(rows[0], self.valid_label_columns)
        features = []
        for column in columns:
            prompt = resolve_column_value(self.prompts, dataset_name, column)
            task = resolve_column_value(self.router_mapping, dataset_name, column)
            texts = [apply_prompt(prompt, row[column]) for row in rows]
            kwargs = {"task": task} if task else {}
            tokenized = self.model.tokenize(texts, **kwargs)
            tokenized.pop("truncated", None)
            if prompt and not self.model.engine.include_prompt:
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
