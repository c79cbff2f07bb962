"""Shared pieces of the listwise cross-encoder losses: (query, [docs]) inputs with per-document labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sentencekit.losses.cross_encoder._cross_encoder_loss import CrossEncoderLoss, check_columns


class ListwiseLoss(CrossEncoderLoss):
    """Scores every (query, document) pair of ``(queries, docs_lists)`` and lays the scores out as a padded
    ``[batch, max_docs]`` matrix, with a matching labels matrix (``-inf`` where a query has fewer documents)."""

    mini_batch_size: int | None

    def _score_matrix(self, inputs: Sequence[Any], labels: Any) -> tuple[Tensor, Tensor] | None:
        check_columns(self, inputs, 2)
        queries, docs_lists = inputs
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels: one relevance list per query.")
        # labels: a list of per-query lists/tensors, or a [batch, docs] tensor when all lists are equally long
        label_rows = [torch.as_tensor(row, dtype=torch.float32).view(-1) for row in labels]
        # None documents are padding: drop them (and their labels, when labels are padded alike)
        kept = [[i for i, d in enumerate(docs) if d is not None] for docs in docs_lists]
        label_rows = [row[keep] if len(row) == len(docs) else row
                      for row, keep, docs in zip(label_rows, kept, docs_lists)]
        docs_lists = [[docs[i] for i in keep] for docs, keep in zip(docs_lists, kept)]
        docs_per_query = [len(docs) for docs in docs_lists]
        if docs_per_query != [len(row) for row in label_rows]:
            raise ValueError(f"Number of documents per query ({docs_per_query}) does not match the number of "
                             f"labels per query ({[len(row) for row in label_rows]}).")
        # a query without documents has nothing to rank: leave it out
        keep = [i for i, n in enumerate(docs_per_query) if n > 0]
        queries = [queries[i] for i in keep]
        docs_lists, label_rows = [docs_lists[i] for i in keep], [label_rows[i] for i in keep]
        docs_per_query = [docs_per_query[i] for i in keep]
        pairs = [(q, d) for q, docs in zip(queries, docs_lists) for d in docs]
        if not pairs:
            return None
        step = self.mini_batch_size or len(queries)
        if step <= 0:
            step = len(pairs)
        scores = torch.cat([self.score_pairs(pairs[i:i + step]).view(-1) for i in range(0, len(pairs), step)])
        scores = self.activation_fn(scores)

        device, batch_size, max_docs = scores.device, len(queries), max(docs_per_query)
        rows = torch.repeat_interleave(torch.arange(batch_size), torch.tensor(docs_per_query)).to(device)
        cols = torch.cat([torch.arange(n) for n in docs_per_query]).to(device)
        # padded documents get a very low score and -inf labels: they drop out of the losses
        score_matrix = torch.full((batch_size, max_docs), -1e16, device=device, dtype=scores.dtype)
        score_matrix = score_matrix.index_put((rows, cols), scores)
        label_matrix = torch.full((batch_size, max_docs), float("-inf"), device=device)
        label_matrix[rows, cols] = torch.cat(label_rows).to(device)
        return score_matrix, label_matrix
