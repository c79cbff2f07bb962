"""A README.md model card written on save: what the model is, how to use it, how it was saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentencekit import __version__


def write_model_card(model: Any, folder: Path, *, model_name: str | None = None,
                     train_datasets: list[str] | None = None) -> None:
    name = model_name or "a sentencekit model"
    kind = type(model).__name__
    modules = "\n".join(f"  ({i}): {type(m).__name__}" for i, m in enumerate(model))
    if kind == "CrossEncoder":
        _write_reranker_card(model, folder, name, modules)
        return
    datasets = "".join(f"- {d}\n" for d in train_datasets or [])
    card = f"""---
library_name: sentence-transformers
tags:
- sentence-transformers
- sentence-similarity
- feature-extraction
- sentencekit
pipeline_tag: sentence-similarity
---

# {name}

A sentence embedding model saved by sentencekit {__version__} in the sentence-transformers format.
It maps text to a {model.get_sentence_embedding_dimension()}-dimensional vector
(max sequence length {model.max_seq_length}, similarity function `{model.similarity_fn_name}`).

## Architecture

```
SentenceTransformer(
{modules}
)
```

## Usage

```python
from sentencekit import SentenceTransformer  # or: from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{name}")
embeddings = model.encode(["How do I get a refund?", "What is your return policy?"])
print(model.similarity(embeddings, embeddings))
```
"""
    if datasets:
        card += f"\n## Training data\n\n{datasets}"
    (folder / "README.md").write_text(card, encoding="utf-8")


def _write_reranker_card(model: Any, folder: Path, name: str, modules: str) -> None:
    card = f"""---
library_name: sentence-transformers
tags:
- sentence-transformers
- cross-encoder
- reranker
- sentencekit
pipeline_tag: text-ranking
---

# {name}

A cross-encoder (reranker) saved by sentencekit {__version__} in the sentence-transformers format.
It scores (query, passage) pairs with {model.num_labels} output(s) (max sequence length
{model.max_seq_length}); use it to re-score a shortlist retrieved by an embedding model.

## Usage

```python
from sentencekit import CrossEncoder  # or: from sentence_transformers import CrossEncoder

model = CrossEncoder("{name}")
model.rank("How do I get a refund?", ["Refunds take 5 days.", "Paris is mild today."])
```
"""
    (folder / "README.md").write_text(card, encoding="utf-8")
