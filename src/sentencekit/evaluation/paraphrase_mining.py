"""``ParaphraseMiningEvaluator``: mine the most similar sentence pairs of a collection and compare them
with known duplicate pairs (average precision, and the best F1 with its score threshold)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import torch

from sentencekit.evaluation.evaluator_base import SentenceEvaluator, csv_name
from sentencekit.evaluation.metrics import best_f1_ranked, merge_top_k, ranked_average_precision
from sentencekit.similarity import cos_sim, to_tensor


def mine_pairs(embeddings: Any, query_chunk_size: int = 5000, corpus_chunk_size: int = 100000,
               max_pairs: int = 500000, top_k: int = 100) -> list[tuple[float, int, int]]:
    """Brute-force paraphrase mining: each embedding's ``top_k`` cosine neighbours (itself excluded)
    become candidate pairs ``(score, i, j)`` with ``i < j``; the best ``max_pairs`` distinct pairs are
    returned, highest score first.

    >>> [(round(s, 3), i, j) for s, i, j in mine_pairs([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], top_k=1)]
    [(0.995, 0, 2), (0.1, 1, 2)]
    """
    emb = to_tensor(embeddings)
    n = len(emb)
    best: dict[tuple[int, int], float] = {}
    for q_start in range(0, n, query_chunk_size):
        queries = emb[q_start : q_start + query_chunk_size]
        rows = torch.arange(len(queries))
        values = ids = None
        for c_start in range(0, n, corpus_chunk_size):
            scores = cos_sim(queries, emb[c_start : c_start + corpus_chunk_size]).float().cpu()
            own = rows + q_start - c_start  # a sentence is not its own paraphrase
            inside = (own >= 0) & (own < scores.shape[1])
            scores[rows[inside], own[inside]] = float("-inf")
            chunk_values, chunk_ids = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
            values, ids = merge_top_k(values, ids, chunk_values, chunk_ids + c_start, top_k)
        if values is None or ids is None:
            continue
        for offset, (row_values, row_ids) in enumerate(zip(values.tolist(), ids.tolist())):
            for score, j in zip(row_values, row_ids):
                if score != float("-inf"):
                    pair = (min(q_start + offset, j), max(q_start + offset, j))
                    best[pair] = max(best.get(pair, score), score)
    pairs = sorted(((score, i, j) for (i, j), score in best.items()), key=lambda p: (-p[0], p[1], p[2]))
    return pairs[:max_pairs]


def _mining_function() -> Any:
    """``sentencekit.util.paraphrase_mining_embeddings`` when the search helpers provide it, else
    :func:`mine_pairs` (same contract: ``[score, i, j]`` with ``i < j``, best first)."""
    try:
        from sentencekit.util import paraphrase_mining_embeddings
    except ImportError:
        return mine_pairs
    return paraphrase_mining_embeddings


def _closure(pairs: set[frozenset]) -> set[frozenset]:
    """All pairs within each connected group of duplicates (a~b and b~c give a~c)."""
    parent: dict[Hashable, Hashable] = {}

    def root(x: Hashable) -> Hashable:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in (tuple(p) for p in pairs):
        parent[root(a)] = root(b)
    groups: dict[Hashable, list[Hashable]] = {}
    for x in list(parent):
        groups.setdefault(root(x), []).append(x)
    return {frozenset((a, b)) for members in groups.values() for i, a in enumerate(members) for b in members[i + 1:]}


class ParaphraseMiningEvaluator(SentenceEvaluator):
    """Mine paraphrase pairs among ``sentences_map`` (id -> sentence) by cosine similarity and score the
    ranked pairs against the duplicates (``duplicates_list`` of id pairs and/or ``duplicates_dict``
    ``{id1: {id2: True}}``; ``add_transitive_closure`` adds a~c from a~b and b~c).

    Metrics: ``average_precision`` (sum of the precision at each true pair, divided by the number of
    duplicate pairs), ``f1``, ``precision``, ``recall`` and ``threshold`` of the best-F1 cut of the ranked
    pairs; primary ``average_precision``. Each sentence's ``top_k`` neighbours are candidates and at
    most ``max_pairs`` pairs are kept.

    >>> from sentencekit.evaluation import ParaphraseMiningEvaluator
    >>> evaluator = ParaphraseMiningEvaluator(
    ...     {"a": "How do I get a refund?", "b": "Can I have my money back?", "c": "Paris is mild today."},
    ...     duplicates_list=[("a", "b")], name="toy")
    >>> evaluator(model)["toy_average_precision"]                    # doctest: +SKIP
    1.0
    """

    def __init__(
        self,
        sentences_map: dict[Hashable, str],
        duplicates_list: Iterable[tuple[Hashable, Hashable]] | None = None,
        duplicates_dict: dict[Hashable, dict[Hashable, bool]] | None = None,
        add_transitive_closure: bool = False,
        query_chunk_size: int = 5000,
        corpus_chunk_size: int = 100000,
        max_pairs: int = 500000,
        top_k: int = 100,
        show_progress_bar: bool = False,
        batch_size: int = 16,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.ids = list(sentences_map)
        self.sentences = [sentences_map[i] for i in self.ids]
        pairs = {frozenset((a, b)) for a, targets in (duplicates_dict or {}).items()
                 for b, is_duplicate in targets.items() if is_duplicate}
        pairs |= {frozenset((a, b)) for a, b in duplicates_list or []}
        if add_transitive_closure:
            pairs = _closure(pairs)
        # only pairs of two different sentences that are in the collection can be found
        self.duplicates = {p for p in pairs if len(p) == 2 and all(i in sentences_map for i in p)}
        self.total_num_duplicates = len(self.duplicates)
        self.add_transitive_closure = add_transitive_closure
        self.query_chunk_size, self.corpus_chunk_size = query_chunk_size, corpus_chunk_size
        self.max_pairs, self.top_k = max_pairs, top_k
        self._run_options(name, batch_size, show_progress_bar, write_csv,
                          csv_name("paraphrase_mining_evaluation", name))
        self.truncate_dim = truncate_dim
        self.csv_headers = ["epoch", "steps", "precision", "recall", "f1", "threshold", "average_precision"]
        self.primary_metric = "average_precision"

    def compute_metrics(self, model: Any) -> dict[str, float]:
        embeddings = self.embed_inputs(model, self.sentences, convert_to_tensor=True)
        pairs = _mining_function()(embeddings, query_chunk_size=self.query_chunk_size,
                                   corpus_chunk_size=self.corpus_chunk_size, max_pairs=self.max_pairs,
                                   top_k=self.top_k)
        ranked = [frozenset((self.ids[i], self.ids[j])) in self.duplicates for _, i, j in pairs]
        scores = [float(score) for score, _, _ in pairs]
        f1, precision, recall, threshold = best_f1_ranked(ranked, scores, self.total_num_duplicates)
        return {
            "average_precision": ranked_average_precision(ranked, self.total_num_duplicates),
            "f1": f1, "precision": precision, "recall": recall, "threshold": threshold,
        }

    def csv_values(self, metrics: dict[str, float]) -> list[float]:
        return [metrics[header] for header in self.csv_headers[2:]]

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        if self.add_transitive_closure:
            config["add_transitive_closure"] = True
        if (self.max_pairs, self.top_k) != (500000, 100):
            config.update(max_pairs=self.max_pairs, top_k=self.top_k)
        return config
