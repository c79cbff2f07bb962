"""The README.md model card written on save: what the model is, how to use it and, after training,
how it was trained (base model, data, loss, hyper-parameters, evaluation results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentencekit import __version__


def write_model_card(model: Any, folder: Path, *, model_name: str | None = None,
                     train_datasets: list[str] | None = None) -> None:
    name = model_name or "sentencekit-model"
    record = getattr(model, "training_record", None) or {}
    reranker = type(model).__name__ == "CrossEncoder"
    sparse = getattr(model, "family", "") == "sparse"
    multivector = getattr(model, "family", "") == "multivector"
    tags = ["sentence-transformers", "sentencekit"] + (
        ["cross-encoder", "reranker"] if reranker else ["sparse-encoder", "sparse", "splade"] if sparse
        else ["multi-vector-encoder", "colbert", "late-interaction"] if multivector
        else ["sentence-similarity", "feature-extraction"])
    pipeline_tag = "text-ranking" if reranker else "feature-extraction" if sparse or multivector \
        else "sentence-similarity"
    front = ["---", "library_name: sentence-transformers", "tags:", *(f"- {t}" for t in tags),
             f"pipeline_tag: {pipeline_tag}"]
    base = record.get("base_model")
    if base and not Path(str(base)).is_absolute() and "/" in str(base):
        front.append(f"base_model: {base}")
    front.append("---")
    modules = "\n".join(f"  ({i}): {type(m).__name__}" for i, m in enumerate(model))
    summary = _sparse_summary(model) if sparse else _multivector_summary(model) if multivector \
        else _summary(model, reranker)
    usage = _sparse_usage(name) if sparse else _multivector_usage(name) if multivector else _usage(name, reranker)
    parts = ["\n".join(front), f"# {name}", summary,
             f"## Architecture\n\n```\n{type(model).__name__}(\n{modules}\n)\n```", usage]
    if record:
        parts.append(_training_section(record))
    elif train_datasets:
        parts.append("## Training data\n\n" + "".join(f"- {d}\n" for d in train_datasets))
    (folder / "README.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def _summary(model: Any, reranker: bool) -> str:
    if reranker:
        return (f"A cross-encoder (reranker) saved by sentencekit {__version__} in the sentence-transformers "
                f"format. It scores (query, passage) pairs with {model.num_labels} output(s) (max sequence length "
                f"{model.max_seq_length}); use it to re-score a shortlist retrieved by an embedding model.")
    return (f"A sentence embedding model saved by sentencekit {__version__} in the sentence-transformers format. "
            f"It maps text to a {model.get_sentence_embedding_dimension()}-dimensional vector (max sequence length "
            f"{model.max_seq_length}, similarity function `{model.similarity_fn_name}`).")


def _sparse_summary(model: Any) -> str:
    cap = f", at most {model.max_active_dims} active dimensions" if model.max_active_dims else ""
    return (f"A sparse encoder (SPLADE) saved by sentencekit {__version__} in the sentence-transformers format. It "
            f"maps text to a sparse {model.get_embedding_dimension()}-dimensional vector over the vocabulary (max "
            f"sequence length {model.max_seq_length}{cap}, similarity function "
            f"`{model._similarity_fn_name or 'dot'}`).")


def _sparse_usage(name: str) -> str:
    code = (f'from sentencekit import SparseEncoder  # or: from sentence_transformers import SparseEncoder\n\n'
            f'model = SparseEncoder("{name}")\n'
            'embeddings = model.encode(["How do I get a refund?", "What is your return policy?"])\n'
            'print(model.decode(embeddings[0], top_k=10))\n'
            'print(model.similarity(embeddings, embeddings))')
    return f"## Usage\n\n```python\n{code}\n```"


def _multivector_summary(model: Any) -> str:
    return (f"A multi-vector (ColBERT-style, late-interaction) encoder saved by sentencekit {__version__} in the "
            f"sentence-transformers format. It maps text to one {model.get_embedding_dimension()}-dimensional vector "
            f"per token (max sequence length {model.max_seq_length}), and scores a query against a document with "
            f"`{model._similarity_fn_name or 'maxsim'}` (each query token's best match among the document's tokens, "
            "summed).")


def _multivector_usage(name: str) -> str:
    code = (f'from sentencekit import MultiVectorEncoder  # or: from sentence_transformers import '
            f'MultiVectorEncoder\n\nmodel = MultiVectorEncoder("{name}")\n'
            'queries = model.encode_query(["How do I get a refund?"])\n'
            'documents = model.encode_document(["Refunds are paid within 5 days.", "Paris is mild today."])\n'
            'print(model.similarity(queries, documents))')
    return f"## Usage\n\n```python\n{code}\n```"


def _usage(name: str, reranker: bool) -> str:
    if reranker:
        code = (f'from sentencekit import CrossEncoder  # or: from sentence_transformers import CrossEncoder\n\n'
                f'model = CrossEncoder("{name}")\n'
                'model.rank("How do I get a refund?", ["Refunds take 5 days.", "Paris is mild today."])')
    else:
        code = (f'from sentencekit import SentenceTransformer  # or: from sentence_transformers import '
                f'SentenceTransformer\n\nmodel = SentenceTransformer("{name}")\n'
                'embeddings = model.encode(["How do I get a refund?", "What is your return policy?"])\n'
                'print(model.similarity(embeddings, embeddings))')
    return f"## Usage\n\n```python\n{code}\n```"


def _training_section(record: dict[str, Any]) -> str:
    lines = ["## Training", ""]
    if record.get("base_model"):
        lines.append(f"- Base model: `{record['base_model']}`")
    for title, key in (("Training data", "datasets"), ("Evaluation data", "eval_datasets")):
        for ds_name, info in (record.get(key) or {}).items():
            lines.append(f"- {title} `{ds_name}`: {info['rows']:,} rows, columns {', '.join(info['columns'])}")
    for ds_name, loss in (record.get("losses") or {}).items():
        config = json.dumps(loss.get("config") or {}, default=str)
        lines.append(f"- Loss ({ds_name}): `{loss['class']}` {config}")
    hyper = record.get("hyperparameters") or {}
    if hyper:
        lines += ["", "### Hyper-parameters (those not at their default)", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(hyper.items())]
    evaluation = [e for e in record.get("evaluation") or [] if len(e) > 2]
    if evaluation:
        keys = sorted({k for e in evaluation for k in e if k.startswith("eval_")
                       and not k.endswith(("_runtime", "_per_second"))})
        lines += ["", "### Evaluation", "", "| epoch | step | " + " | ".join(k.removeprefix("eval_") for k in keys)
                  + " |", "|---|---|" + "---|" * len(keys)]
        for e in evaluation:
            cells = [f"{e[k]:.4f}" if isinstance(e.get(k), float) else str(e.get(k, "")) for k in keys]
            epoch = e.get("epoch")
            lines.append(f"| {epoch:.2f} | {e.get('step')} | " if isinstance(epoch, float)
                         else f"| {epoch} | {e.get('step')} | ")
            lines[-1] += " | ".join(cells) + " |"
    return "\n".join(lines)
