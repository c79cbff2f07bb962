"""Brute-force retrieval over embeddings, as ``sentence_transformers.util`` has it: ``semantic_search``,
``paraphrase_mining`` and ``paraphrase_mining_embeddings``.

Scores come from ``score_function`` (cosine by default); the corpus is scanned in chunks so memory stays
bounded, and each chunk's top-k is merged into a running top-k.

>>> semantic_search([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.1]], top_k=1)  # doctest: +ELLIPSIS
[[{'corpus_id': 1, 'score': 0.995...}]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sentencekit.similarity import cos_sim, to_tensor

ScoreFunction = Callable[[Tensor, Tensor], Tensor]


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _chunk_scores(score_function: ScoreFunction, queries: Tensor, corpus_chunk: Tensor, prenormalized: bool) -> Tensor:
    """Scores ``[len(queries), len(corpus_chunk)]``; with cosine the corpus chunk is normalized once by
    the caller, so only the (small) query chunk is normalized here."""
    if prenormalized:
        return F.normalize(queries, p=2, dim=1) @ corpus_chunk.T
    return score_function(queries, corpus_chunk).detach()


def _merge_topk(values: Tensor | None, ids: Tensor | None, new_values: Tensor, new_ids: Tensor,
                k: int) -> tuple[Tensor, Tensor]:
    """Keep the ``k`` best of the running ``(values, ids)`` and a chunk's candidates, per row."""
    if values is not None:
        new_values, new_ids = torch.cat([values, new_values], dim=1), torch.cat([ids, new_ids], dim=1)
    best, pos = torch.topk(new_values, min(k, new_values.shape[1]), dim=1)
    return best, torch.gather(new_ids, 1, pos)


def _running_topk(queries: Tensor, corpus: Tensor, k: int, corpus_chunk_size: int,
                  score_function: ScoreFunction, prenormalized: bool) -> tuple[Tensor, Tensor]:
    """Top-``k`` ``(scores, corpus ids)`` of each query over the whole corpus, scanning it in chunks."""
    values = ids = None
    for start in range(0, len(corpus), corpus_chunk_size):
        scores = _chunk_scores(score_function, queries, corpus[start : start + corpus_chunk_size], prenormalized)
        chunk_values, chunk_ids = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        values, ids = _merge_topk(values, ids, chunk_values, chunk_ids + start, k)
    return values, ids


def _prepare(corpus: Tensor, score_function: ScoreFunction) -> tuple[Tensor, bool]:
    if score_function is cos_sim:
        return F.normalize(corpus, p=2, dim=1), True
    return corpus, False


def semantic_search(
    query_embeddings: Any,
    corpus_embeddings: Any,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: ScoreFunction = cos_sim,
) -> list[list[dict[str, int | float]]]:
    """For each query, the ``top_k`` corpus entries with the highest ``score_function`` score.

    Accepts lists, NumPy arrays or tensors; a 1-D query is one query. ``top_k`` larger than the corpus
    returns the whole corpus. Returns one list per query of ``{"corpus_id", "score"}``, best first.

    >>> hits = semantic_search([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], top_k=2)
    >>> [h["corpus_id"] for h in hits[0]]
    [1, 2]
    """
    _positive("query_chunk_size", query_chunk_size)
    _positive("corpus_chunk_size", corpus_chunk_size)
    queries, corpus = to_tensor(query_embeddings), to_tensor(corpus_embeddings)
    queries = queries.to(corpus.device)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"Query embeddings have dimension {queries.shape[1]} but corpus embeddings have "
                         f"{corpus.shape[1]}: were they made by different models (or truncated differently)?")
    results: list[list[dict[str, int | float]]] = [[] for _ in range(len(queries))]
    if top_k <= 0 or len(corpus) == 0:
        return results
    corpus, prenormalized = _prepare(corpus, score_function)
    if prenormalized and queries.dtype != corpus.dtype:
        queries, corpus = queries.double(), corpus.double()
    for q_start in range(0, len(queries), query_chunk_size):
        values, ids = _running_topk(queries[q_start : q_start + query_chunk_size], corpus, top_k,
                                    corpus_chunk_size, score_function, prenormalized)
        for offset, (row_values, row_ids) in enumerate(zip(values.tolist(), ids.tolist())):
            results[q_start + offset] = [{"corpus_id": int(i), "score": float(s)} for s, i in zip(row_values, row_ids)]
    return results


def information_retrieval(*args: Any, **kwargs: Any) -> list[list[dict[str, int | float]]]:
    """Deprecated alias of :func:`semantic_search` (kept for sentence-transformers compatibility).

    >>> information_retrieval([[1.0]], [[2.0]])[0][0]["corpus_id"]
    0
    """
    return semantic_search(*args, **kwargs)


def paraphrase_mining(
    model: Any,
    sentences: list[str],
    show_progress_bar: bool = False,
    batch_size: int = 32,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> list[list[float | int]]:
    """Embed ``sentences`` with ``model`` and return the most similar pairs as ``[score, i, j]`` (``i < j``),
    best first; see :func:`paraphrase_mining_embeddings`.

    >>> pairs = paraphrase_mining(model, ["A cat sits.", "A cat is sitting.", "Stocks fell."])  # doctest: +SKIP
    >>> pairs[0][1:]                                                                           # doctest: +SKIP
    [0, 1]
    """
    embeddings = model.encode(sentences, show_progress_bar=show_progress_bar, batch_size=batch_size,
                              convert_to_tensor=True, truncate_dim=truncate_dim, prompt_name=prompt_name,
                              prompt=prompt)
    return paraphrase_mining_embeddings(embeddings, query_chunk_size=query_chunk_size,
                                        corpus_chunk_size=corpus_chunk_size, max_pairs=max_pairs, top_k=top_k,
                                        score_function=score_function)


def paraphrase_mining_embeddings(
    embeddings: Any,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
) -> list[list[float | int]]:
    """The highest-scoring pairs among ``embeddings``: each entry's ``top_k`` neighbours (itself excluded)
    become candidate pairs; the best ``max_pairs`` distinct pairs are returned as ``[score, i, j]`` with
    ``i < j``, highest score first. ``score_function`` is assumed symmetric.

    >>> paraphrase_mining_embeddings([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], top_k=1)  # doctest: +ELLIPSIS
    [[0.995..., 0, 2], [0.0995..., 1, 2]]
    """
    _positive("query_chunk_size", query_chunk_size)
    _positive("corpus_chunk_size", corpus_chunk_size)
    emb = to_tensor(embeddings)
    n = len(emb)
    if n < 2 or top_k <= 0 or max_pairs <= 0:
        return []
    emb, prenormalized = _prepare(emb, score_function)
    best_s, best_a, best_b = np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64)
    for q_start in range(0, n, query_chunk_size):
        queries = emb[q_start : q_start + query_chunk_size]
        values, ids = _running_topk(queries, emb, top_k + 1, corpus_chunk_size, score_function, prenormalized)
        values, ids = values.double().cpu().numpy(), ids.cpu().numpy()
        rows = np.arange(q_start, q_start + len(queries))[:, None]
        not_self = ids != rows
        keep = not_self & (np.cumsum(not_self, axis=1) <= top_k)  # the first top_k neighbours that are not itself
        i, j = np.broadcast_to(rows, ids.shape)[keep], ids[keep]
        best_s = np.concatenate([best_s, values[keep]])
        best_a = np.concatenate([best_a, np.minimum(i, j)])
        best_b = np.concatenate([best_b, np.maximum(i, j)])
        best_s, best_a, best_b = _distinct_top_pairs(best_s, best_a, best_b, n, max_pairs)
    order = np.lexsort((best_b, best_a, -best_s))
    return [[float(best_s[o]), int(best_a[o]), int(best_b[o])] for o in order]


def _distinct_top_pairs(scores: np.ndarray, a: np.ndarray, b: np.ndarray, n: int,
                        max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop repeated pairs (keeping the best score) and keep the ``max_pairs`` best."""
    order = np.argsort(-scores, kind="stable")
    _, first = np.unique((a * n + b)[order], return_index=True)
    keep = order[first]
    if len(keep) > max_pairs:
        keep = keep[np.argpartition(-scores[keep], max_pairs - 1)[:max_pairs]]
    return scores[keep], a[keep], b[keep]
