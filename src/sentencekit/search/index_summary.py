"""``sentencekit index info``: an index's manifest as a few readable lines (``--json`` prints it whole)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _retrieval(m: dict[str, Any]) -> str:
    """Which first stages the index keeps sides for, and the ``--retrieval`` values that use them."""
    lexical, sparse = isinstance(m.get("lexical"), dict), isinstance(m.get("sparse"), dict)
    multivector = isinstance(m.get("multivector"), dict)
    sides = ["dense"] + (["lexical (BM25)"] if lexical else []) + (["learned-sparse"] if sparse else []) + (
        ["multi-vector"] if multivector else [])
    choices = ["dense"] + (["lexical"] if lexical else []) + (["sparse"] if sparse else []) + (
        ["multivector"] if multivector else []) + (["hybrid"] if lexical or sparse or multivector else [])
    return f"{', '.join(sides)} (--retrieval {'|'.join(choices)})"


def _sparse(m: dict[str, Any]) -> str | None:
    """The learned-sparse side: its model, vocabulary and stored weights (``None``: the index has none)."""
    entry = m.get("sparse")
    if not isinstance(entry, dict):
        return None
    info = entry.get("model") or {}
    parts = entry.get("parts") or []
    rows, nnz = sum(int(p.get("rows", 0)) for p in parts), sum(int(p.get("nnz", 0)) for p in parts)
    active = f", {nnz / rows:.1f} active terms per vector" if rows else ""
    return (f"{info.get('name_or_path')} ({info.get('class')}, fingerprint {str(info.get('fingerprint'))[:8]}), "
            f"{entry.get('vocab')} terms{active}")


def _multivector(m: dict[str, Any]) -> str | None:
    """The late-interaction side: its model, token dimension and stored tokens (``None``: the index has none)."""
    entry = m.get("multivector")
    if not isinstance(entry, dict):
        return None
    info = entry.get("model") or {}
    parts = entry.get("parts") or []
    rows, tokens = sum(int(p.get("rows", 0)) for p in parts), sum(int(p.get("tokens", 0)) for p in parts)
    per_row = f", {tokens / rows:.1f} tokens per vector row" if rows else ""
    return (f"{info.get('name_or_path')} ({info.get('class')}, fingerprint {str(info.get('fingerprint'))[:8]}), "
            f"{entry.get('dim')}-dim {entry.get('dtype')} tokens{per_row}")


def summary_lines(folder: str | os.PathLike, index: Any) -> list[str]:
    """The summary of the index at ``folder`` (an opened ``EmbeddingIndex``): documents and vectors, model,
    vector format, index kind, prompts, storage. Keys a newer manifest adds are not shown here (see
    ``--json``)."""
    m: dict[str, Any] = index.manifest
    counts = m.get("counts", {})
    docs, vectors = len(index), counts.get("vectors", len(index))
    model = m.get("model", {})
    fingerprint = str(model.get("fingerprint", ""))[:8]
    dims = m.get("dimension")
    if m.get("truncate_dim"):
        dims = f"{m['truncate_dim']} (truncated from {dims})"
    shape = f"{dims} dims, {m.get('precision')}, {m.get('similarity_fn_name')}" + (
        ", normalized" if m.get("normalize") else "")
    titles = counts.get("titles", 0)  # a titled document has one vector for its title besides its text's
    text_vectors = vectors - titles
    chunked = (f", {titles} for titles" if titles else "") + (
        f", {text_vectors / max(docs, 1):.1f} chunks per document" if text_vectors > docs else "")
    prompts = ", ".join(f"{role}: {name!r}" for role, name in (("documents", m.get("prompt_name")),
                                                              ("queries", m.get("query_prompt_name"))) if name)
    rows = [
        ("documents", f"{docs} ({vectors} vectors{chunked})"),
        ("model", f"{model.get('name_or_path')} ({model.get('class')}, fingerprint {fingerprint})"),
        ("vectors", shape),
        ("index kind", str(m.get("backend"))),
        ("retrieval", _retrieval(m)),
        *([("sparse model", _sparse(m))] if _sparse(m) else []),
        *([("multi-vector model", _multivector(m))] if _multivector(m) else []),
        ("prompts", prompts or "none"),
        ("storage", f"{counts.get('segments', 0)} segment(s), {counts.get('deleted_vectors', 0)} deleted vector(s), "
                    f"{_size(_folder_bytes(Path(folder)))} on disk"),
        ("created with", f"{m.get('created_with')} (format {m.get('format_version')}, generation "
                         f"{m.get('generation')})"),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"Index {folder}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
