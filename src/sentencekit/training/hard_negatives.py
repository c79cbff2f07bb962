"""Hard-negative mining: for each (anchor, positive) pair, find passages the embedding model ranks high
for the anchor that are not its positive, optionally filtered by a cross-encoder, and turn them into
training rows (triplets, n-tuples, labelled pairs or lists), as sentence-transformers' function does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

OutputFormat = Literal["triplet", "n-tuple", "n-tuple-scores", "labeled-pair", "labeled-list"]


def mine_hard_negatives(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Sequence[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: Literal["random", "top"] = "top",
    query_prompt_name: str | None = None,
    corpus_prompt_name: str | None = None,
    include_positives: bool = False,
    output_format: OutputFormat = "triplet",
    batch_size: int = 32,
    use_faiss: bool = False,
    verbose: bool = True,
    seed: int = 12,
) -> Any:
    """Mine hard negatives for a dataset of (anchor, positive) pairs; returns a ``datasets.Dataset``.

    Candidates are the dataset's positives plus ``corpus``, ranked by the model's similarity to the
    anchor; the anchor's own positives are never negatives. ``range_min``/``range_max`` keep candidates
    by rank, ``min_score``/``max_score`` and ``absolute_margin``/``relative_margin`` (a negative must score
    below ``positive - margin`` / ``positive * (1 - margin)``) by score — with a ``cross_encoder``, by its
    scores instead. ``sampling_strategy`` takes the best remaining (``"top"``) or random ones.

    >>> from datasets import Dataset                                                         # doctest: +SKIP
    >>> pairs = Dataset.from_dict({"query": ["how do I get a refund?"], "answer": ["Refunds take 5 days."]})
    >>> mine_hard_negatives(pairs, model, corpus=faq_texts, num_negatives=2)                 # doctest: +SKIP
    Dataset({features: ['query', 'answer', 'negative'], num_rows: 2})
    """
    from datasets import Dataset

    columns = list(dataset.column_names)
    anchor_column_name = anchor_column_name or columns[0]
    positive_column_name = positive_column_name or columns[1]
    for name in (anchor_column_name, positive_column_name):
        if name not in columns:
            raise ValueError(f"Column {name!r} not in the dataset (columns: {columns}).")
    if output_format not in ("triplet", "n-tuple", "n-tuple-scores", "labeled-pair", "labeled-list"):
        raise ValueError(f"Unknown output_format {output_format!r}.")
    if sampling_strategy not in ("top", "random"):
        raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}")
    anchors: list[str] = list(dataset[anchor_column_name])
    positives: list[str] = list(dataset[positive_column_name])

    passages = list(dict.fromkeys([*positives, *(corpus or [])]))  # unique, positives first
    position = {p: i for i, p in enumerate(passages)}
    queries = list(dict.fromkeys(anchors))
    query_index = {q: i for i, q in enumerate(queries)}
    positives_of: dict[int, set[int]] = defaultdict(set)
    for anchor, positive in zip(anchors, positives):
        positives_of[query_index[anchor]].add(position[positive])

    q_emb = model.encode_query(queries, prompt_name=query_prompt_name, batch_size=batch_size,
                               normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=verbose)
    p_emb = model.encode_document(passages, prompt_name=corpus_prompt_name, batch_size=batch_size,
                                  normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=verbose)
    depth = min(len(passages), (range_max if range_max is not None else range_min + num_negatives * 10)
                + max(len(v) for v in positives_of.values()))
    ranked_ids, ranked_scores = _top_candidates(q_emb, p_emb, depth, use_faiss)

    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    kept_counts = []
    for anchor, positive in zip(anchors, positives):
        qi, pi = query_index[anchor], position[positive]
        own = positives_of[qi]
        candidates = [(int(c), float(s)) for c, s in zip(ranked_ids[qi], ranked_scores[qi])
                      if include_positives or c not in own]
        candidates = candidates[range_min:range_max]
        positive_score = float(q_emb[qi] @ p_emb[pi])
        if cross_encoder is not None and candidates:
            scores = cross_encoder.predict([(anchor, passages[c]) for c, _ in candidates] + [(anchor, positive)],
                                           batch_size=batch_size, show_progress_bar=False)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            positive_score = float(scores[-1])
            candidates = [(c, float(s)) for (c, _), s in zip(candidates, scores[:-1])]
            candidates.sort(key=lambda cs: cs[1], reverse=True)
        candidates = [(c, s) for c, s in candidates
                      if (max_score is None or s <= max_score) and (min_score is None or s >= min_score)
                      and (absolute_margin is None or s <= positive_score - absolute_margin)
                      and (relative_margin is None or s <= positive_score * (1 - relative_margin))]
        if sampling_strategy == "random" and len(candidates) > num_negatives:
            picks = sorted(rng.choice(len(candidates), size=num_negatives, replace=False))
            candidates = [candidates[i] for i in picks]
        chosen = candidates[:num_negatives]
        kept_counts.append(len(chosen))
        rows.extend(_format_rows(output_format, anchor_column_name, positive_column_name, anchor, positive,
                                 positive_score, [(passages[c], s) for c, s in chosen], num_negatives))
    if verbose:
        logger.info("Mined %d negatives for %d pairs (%d pairs got fewer than %d).", sum(kept_counts),
                    len(anchors), sum(k < num_negatives for k in kept_counts), num_negatives)
    return Dataset.from_list(rows) if rows else Dataset.from_dict({})


def _top_candidates(q_emb: np.ndarray, p_emb: np.ndarray, depth: int, use_faiss: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Top ``depth`` passages per query by inner product (vectors are normalized: cosine)."""
    if use_faiss:
        from sentencekit.search.faiss_search import import_faiss

        faiss = import_faiss()
        index = faiss.IndexFlatIP(p_emb.shape[1])
        index.add(np.ascontiguousarray(p_emb, dtype=np.float32))
        scores, ids = index.search(np.ascontiguousarray(q_emb, dtype=np.float32), depth)
        return ids, scores
    ids_out, scores_out = [], []
    for start in range(0, len(q_emb), 1024):  # bounded memory: 1024 queries x corpus at a time
        sims = q_emb[start : start + 1024] @ p_emb.T
        top = np.argpartition(-sims, depth - 1, axis=1)[:, :depth] if depth < sims.shape[1] else \
            np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        ids_out.append(np.take_along_axis(top, order, axis=1))
        scores_out.append(np.take_along_axis(top_scores, order, axis=1))
    return np.concatenate(ids_out), np.concatenate(scores_out)


def _format_rows(output_format: str, anchor_col: str, positive_col: str, anchor: str, positive: str,
                 positive_score: float, negatives: list[tuple[str, float]], num_negatives: int
                 ) -> list[dict[str, Any]]:
    if output_format == "triplet":
        return [{anchor_col: anchor, positive_col: positive, "negative": text} for text, _ in negatives]
    if output_format in ("n-tuple", "n-tuple-scores"):
        if len(negatives) < num_negatives:
            return []  # every row must have the same number of columns
        row = {anchor_col: anchor, positive_col: positive}
        row.update({f"negative_{i + 1}": text for i, (text, _) in enumerate(negatives)})
        if output_format == "n-tuple-scores":
            row["score"] = [positive_score, *(s for _, s in negatives)]
        return [row]
    if output_format == "labeled-pair":
        return [{anchor_col: anchor, "passage": positive, "label": 1},
                *({anchor_col: anchor, "passage": text, "label": 0} for text, _ in negatives)]
    return [{anchor_col: anchor, "passages": [positive, *(t for t, _ in negatives)],
             "labels": [1] + [0] * len(negatives)}]
