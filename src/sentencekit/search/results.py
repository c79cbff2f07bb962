"""Turning scored rows into results: one hit per document, and reranking with a cross-encoder.

>>> best_per_doc(np.array([0, 1]), np.array([1]), np.array([0.5]), k=5)
[(1, 1, 0.5)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentencekit.search.segments import Snapshot


def make_hit(snap: Snapshot, number: int, row: int, score: float) -> dict[str, Any]:
    """The result dict of global document ``number`` found through ``row`` (see :func:`document_hit`).

    >>> make_hit(snap, 0, 0, 0.83)["id"]  # doctest: +SKIP
    'refund'
    """
    return document_hit(snap.docs[number], int(row - snap.doc_first_row[number]), score)


def document_hit(doc: dict[str, Any], part: int, score: float) -> dict[str, Any]:
    """The result dict of stored document ``doc`` (``{"id", "text", "metadata"}``, optional ``"title"``,
    ``"modality"``, ``"chunks"``: ``[start, end]`` spans indexable by chunk number) found through its vector
    number ``part`` (0-based, in the order the document's vectors are stored: its title's first, then its text's
    or its chunks'): for a document with a title, ``"title"`` and ``"field"`` (``"title"`` when its title's
    vector scored best, else ``"text"``); for a chunked document found through a chunk, ``"chunk"``.

    >>> document_hit({"id": "a", "text": "Refunds. Shipping.", "chunks": [[0, 8], [9, 18]]}, 1, 0.5)["chunk"]
    {'index': 1, 'start': 9, 'end': 18, 'text': 'Shipping.'}
    """
    hit = {"id": doc["id"], "score": float(score), "text": doc["text"], "metadata": doc.get("metadata")}
    index = int(part)
    if doc.get("title"):
        hit["title"] = doc["title"]
        hit["field"] = "title" if index == 0 else "text"
        index -= 1
    if doc.get("modality"):
        hit["modality"] = doc["modality"]
    if doc.get("chunks") and index >= 0:
        start, end = doc["chunks"][index]
        hit["chunk"] = {"index": index, "start": start, "end": end, "text": doc["text"][start:end]}
    return hit


def lexical_row(snap: Snapshot, number: int, query: str) -> int:
    """The row of global document ``number`` found by BM25 alone (which scores whole documents): its text's
    row, or for a chunked document the chunk holding most of ``query``'s terms."""
    doc = snap.docs[number]
    first, spans = int(snap.doc_first_row[number]) + (1 if doc.get("title") else 0), doc.get("chunks")
    if not spans:
        return first
    from sentencekit.search.lexical import best_chunk

    text = doc["text"]
    return first + best_chunk(query, [text[start:end] for start, end in spans])


def best_per_doc(row_doc: np.ndarray, rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """Walk rows best first, keeping each document's first (= best) row, until ``k`` documents.

    >>> best_per_doc(np.array([0, 0, 1]), np.array([1, 0, 2]), np.array([0.9, 0.8, 0.5]), k=2)
    [(0, 1, 0.9), (1, 2, 0.5)]
    """
    seen: set[int] = set()
    out = []
    for row, score in zip(rows.tolist(), scores.tolist()):
        if row < 0:
            continue
        doc = int(row_doc[row])
        if doc not in seen:
            seen.add(doc)
            out.append((doc, row, score))
            if len(out) == k:
                break
    return out


def reranker_text(hit: dict[str, Any]) -> str:
    """What the reranker reads of a hit: its title (if any) on the first line, then the best chunk's text
    (chunked documents) or the whole text.

    >>> print(reranker_text({"title": "Refunds", "text": "Paid in 5 days."}))
    Refunds
    Paid in 5 days.
    """
    text = hit["chunk"]["text"] if "chunk" in hit else hit["text"]
    return f"{hit['title']}\n{text}" if hit.get("title") else text


def rerank(reranker: Any, queries: list[str], results: list[list[dict]], top_k: int) -> list[list[dict]]:
    """Score every (query, hit text) pair with the reranker in one call; keep the ``top_k`` best.
    Hits get the reranker's ``"score"`` and keep the embedding score as ``"retrieval_score"``.

    >>> class Longest:
    ...     def predict(self, pairs):
    ...         return np.array([len(text) for _, text in pairs], dtype=float)
    >>> rerank(Longest(), ["q"], [[{"id": "a", "score": 0.9, "text": "x"},
    ...                           {"id": "b", "score": 0.5, "text": "xyz"}]], top_k=1)
    [[{'id': 'b', 'score': 3.0, 'text': 'xyz', 'retrieval_score': 0.5}]]
    """
    pairs = [(q, reranker_text(h)) for q, hits in zip(queries, results) for h in hits]
    if not pairs:
        return results
    scores = np.asarray(reranker.predict(pairs), dtype=np.float64).reshape(-1)
    if len(scores) != len(pairs):
        raise ValueError(f"reranker.predict returned {len(scores)} scores for {len(pairs)} pairs; a reranker "
                         "must return one score per (query, document) pair.")
    position = iter(scores.tolist())
    reranked = []
    for hits in results:
        for hit in hits:
            hit["retrieval_score"], hit["score"] = hit["score"], next(position)
        reranked.append(sorted(hits, key=lambda h: h["score"], reverse=True)[:top_k])
    return reranked
