"""Late-interaction (ColBERT MaxSim) scores on torch tensors: what ``MultiVectorEncoder.similarity`` uses on the
torch backend, with the arguments and results of sentence-transformers 6.2's ``util.maxsim`` /
``maxsim_pairwise`` / ``mean_maxsim`` / ``mean_maxsim_pairwise``. The NumPy twin (torch-free backend,
indexes) is :mod:`sentencekit.late_interaction`; the math and conventions are the same:

``S(q, d) = sum_i max_j q_i . d_j`` over real query tokens ``i`` and real document tokens ``j`` (Khattab &
Zaharia, ColBERT, SIGIR 2020). Masked document tokens are filled with the dtype minimum before the max (so a
padding token never wins over a negative similarity), masked query tokens are zeroed before the sum (a float
query mask weights each token), per-token maxima are summed in float32 (bf16 inputs keep distinct scores),
and a document without any real token scores ``-1e9`` (logged once). ``length_normalize`` divides by the
number of real query tokens (MeanMaxSim).

Each side is a list of ``[n_i, dim]`` tensors or arrays (zero-padded per chunk, the mask from the lengths), a
padded ``[batch, tokens, dim]`` tensor (the mask from its all-zero rows unless given) or one ``[tokens, dim]``
tensor (a batch of one); integer inputs are upcast to float. Chunks hold at most ``chunk_elements`` (1e8)
elements of padded embeddings plus similarities, so a long outlier only sizes its own chunk. Scores come back
float32 on the documents' device (``device=`` moves only the scoring).

>>> import torch
>>> q = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
>>> d = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8], [0.0, 1.0]])]
>>> maxsim(q, d)
tensor([[1.0000, 1.6000]])
>>> maxsim_pairwise(q + q, d, length_normalize=True)
tensor([0.5000, 0.8000])
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sentencekit.late_interaction import DEFAULT_CHUNK_ELEMENTS, EMPTY_DOCUMENT_SCORE

logger = logging.getLogger(__name__)
_warned_empty = False


def _tensor(x: Any) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t if t.is_floating_point() else t.float()


def _side(embeddings: Any, mask: Any, name: str) -> tuple[list[Tensor] | Tensor, Tensor | None]:
    """One side as a list of 2-D tensors or a 3-D tensor, and its mask as one tensor (``None``: derived per
    chunk). Raises ``ValueError`` for other shapes."""
    if isinstance(mask, (list, tuple)):
        mask = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(np.asarray(m)) if not isinstance(m, Tensor) else m
                                                for m in mask], batch_first=True)
    elif mask is not None and not isinstance(mask, Tensor):
        mask = torch.as_tensor(np.asarray(mask))
    if isinstance(embeddings, (list, tuple)):
        items = [_tensor(e) for e in embeddings]
        if any(t.dim() != 2 for t in items):
            raise ValueError(f"Each multi-vector embedding must be [tokens, dim]; got shapes "
                             f"{sorted({tuple(t.shape) for t in items if t.dim() != 2})}.")
        return items, mask
    padded = _tensor(embeddings)
    if padded.dim() == 2:
        padded = padded.unsqueeze(0)
        if mask is not None and mask.dim() == 1:
            mask = mask.unsqueeze(0)
    if padded.dim() != 3:
        raise ValueError(f"Multi-vector embeddings must be a list of [tokens, dim] tensors, a padded [batch, tokens, "
                         f"dim] tensor or one [tokens, dim] tensor; got shape {tuple(padded.shape)}.")
    return padded, mask


def _widths(items: list[Tensor] | Tensor) -> list[int]:
    return [len(t) for t in items] if isinstance(items, list) else [items.shape[1]] * len(items)


def _device(items: list[Tensor] | Tensor) -> torch.device | None:
    if isinstance(items, Tensor):
        return items.device
    return items[0].device if items else None


def _check_mask(mask: Tensor | None, count: int, width: int, name: str) -> Tensor | None:
    if mask is None:
        return None
    if mask.shape[-1] != width:
        raise ValueError(f"`{name}` covers {mask.shape[-1]} tokens, but the padded embeddings have {width}.")
    return mask.expand(count, -1)


def _chunk(items: list[Tensor] | Tensor, mask: Tensor | None, start: int, end: int,
           device: torch.device) -> tuple[Tensor, Tensor]:
    """Items ``start:end`` padded on ``device``, with their mask (given, from lengths, or from zero rows)."""
    if isinstance(items, list):
        part = [t.to(device) for t in items[start:end]]
        lengths = torch.tensor([len(t) for t in part], device=device)
        dim = next((t.shape[-1] for t in part), 0)
        width = int(lengths.max()) if len(part) else 0
        padded = torch.nn.utils.rnn.pad_sequence(part, batch_first=True) if width else \
            torch.zeros(len(part), 0, dim, device=device)
        own = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    else:
        padded = items[start:end].to(device)
        own = padded.any(dim=-1)
    if mask is None:
        return padded, own.to(padded.dtype)
    return padded, mask[start:end, :padded.shape[1]].to(device)


def fill_empty_scores(scores: Tensor, empty: Tensor) -> Tensor:
    """``scores`` (``[a, b]`` or ``[n]``) with the documents flagged in ``empty`` (``[b]`` / ``[n]``) at -1e9."""
    global _warned_empty
    if not _warned_empty and empty.device.type == "cpu" and bool(empty.any()):  # reading a GPU flag would sync
        _warned_empty = True
        logger.warning("%d document(s) have no scoreable token (every token masked, e.g. by MultiVectorMask's "
                       "skiplist or keep_only_token_ids, or an empty embedding): they score %.0e, below every "
                       "real document.", int(empty.sum()), EMPTY_DOCUMENT_SCORE)
    return scores.masked_fill(empty, EMPTY_DOCUMENT_SCORE)


def _reduce(sims: Tensor, a_mask: Tensor, b_mask: Tensor, doc_axis: str) -> Tensor:
    """Max over document tokens (masked ones at the dtype minimum), then the weighted float32 sum over query
    tokens. ``sims`` is ``[a, b, s, t]`` (``doc_axis="all"``) or ``[n, s, t]`` (pairs)."""
    if sims.shape[-1] == 0:  # every document of the chunk is zero-width: nothing to take the max over
        best = sims.new_zeros(sims.shape[:-1], dtype=torch.float32)
    else:
        keep = b_mask.bool()
        keep = keep[None, :, None, :] if doc_axis == "all" else keep[:, None, :]
        best = sims.masked_fill(~keep, torch.finfo(sims.dtype).min).max(dim=-1).values.float()
    weights = a_mask.float()[:, None, :] if doc_axis == "all" else a_mask.float()
    return fill_empty_scores((best * weights).sum(dim=-1), ~b_mask.bool().any(dim=-1))  # [b] broadcasts over [a, b]


def _token_counts(items: list[Tensor] | Tensor, mask: Tensor | None) -> Tensor:
    if mask is not None:
        return mask.bool().sum(dim=-1).clamp(min=1)
    if isinstance(items, list):
        return torch.tensor([max(len(t), 1) for t in items])
    return items.any(dim=-1).sum(dim=-1).clamp(min=1)


def chunk_ranges(widths: list[int], cost: int, budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges whose padded cost ``count * max width * cost`` stays within ``budget`` (at least one
    item each)."""
    ranges, start, width = [], 0, 0
    for i, w in enumerate(widths):
        if i > start and (i - start + 1) * max(width, w) * cost > budget:
            ranges.append((start, i))
            start, width = i, 0
        width = max(width, w)
    ranges.append((start, len(widths)))
    return ranges


def maxsim(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
           length_normalize: bool = False, device: str | torch.device | None = None) -> Tensor:
    """MaxSim of every query in ``a`` with every document in ``b``: ``[len(a), len(b)]`` float32 on the
    documents' device (see the module docstring). Raises ``ValueError`` for malformed inputs or masks."""
    a, a_mask = _side(a, a_mask, "a_mask")
    b, b_mask = _side(b, b_mask, "b_mask")
    home = _device(b) or _device(a) or torch.device("cpu")
    if len(a) == 0 or len(b) == 0:
        return torch.zeros(len(a), len(b), dtype=torch.float32, device=home)
    q_widths, d_widths = _widths(a), _widths(b)
    a_mask = _check_mask(a_mask, len(a), max(q_widths), "a_mask")
    b_mask = _check_mask(b_mask, len(b), max(d_widths), "b_mask")
    work = torch.device(device) if device is not None else home
    budget = int(chunk_elements or DEFAULT_CHUNK_ELEMENTS)
    dim = (b[0] if isinstance(b, list) else b).shape[-1]
    rows = []
    for q0, q1 in chunk_ranges(q_widths, max(d_widths) + dim, budget):
        qa, qm = _chunk(a, a_mask, q0, q1, work)
        cols = []
        for d0, d1 in chunk_ranges(d_widths, qa.shape[0] * qa.shape[1] + dim, max(budget - qa.numel(), 1)):
            db, dm = _chunk(b, b_mask, d0, d1, work)
            dtype = torch.promote_types(qa.dtype, db.dtype)
            sims = torch.einsum("asd,btd->abst", qa.to(dtype), db.to(dtype))
            cols.append(_reduce(sims, qm, dm, "all").to(home))
        rows.append(torch.cat(cols, dim=1))
    scores = torch.cat(rows, dim=0)
    if length_normalize:
        scores = scores / _token_counts(a, a_mask).to(scores.device, torch.float32).unsqueeze(1)
    return scores


def maxsim_pairwise(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                    length_normalize: bool = False, device: str | torch.device | None = None) -> Tensor:
    """MaxSim of ``a[i]`` with ``b[i]``: ``[n]`` float32 on the documents' device. Raises ``ValueError`` when
    the sides differ in length or are malformed."""
    a, a_mask = _side(a, a_mask, "a_mask")
    b, b_mask = _side(b, b_mask, "b_mask")
    if len(a) != len(b):
        raise ValueError(f"`a` and `b` must hold the same number of items to score as pairs, got {len(a)} and "
                         f"{len(b)}.")
    home = _device(b) or _device(a) or torch.device("cpu")
    if len(a) == 0:
        return torch.zeros(0, dtype=torch.float32, device=home)
    q_widths, d_widths = _widths(a), _widths(b)
    a_mask = _check_mask(a_mask, len(a), max(q_widths), "a_mask")
    b_mask = _check_mask(b_mask, len(b), max(d_widths), "b_mask")
    work = torch.device(device) if device is not None else home
    dim = (b[0] if isinstance(b, list) else b).shape[-1]
    parts = []
    for s, e in chunk_ranges(d_widths, max(q_widths) * 2 + dim, int(chunk_elements or DEFAULT_CHUNK_ELEMENTS)):
        qa, qm = _chunk(a, a_mask, s, e, work)
        db, dm = _chunk(b, b_mask, s, e, work)
        dtype = torch.promote_types(qa.dtype, db.dtype)
        parts.append(_reduce(torch.einsum("nsd,ntd->nst", qa.to(dtype), db.to(dtype)), qm, dm, "pairs").to(home))
    scores = torch.cat(parts)
    if length_normalize:
        scores = scores / _token_counts(a, a_mask).to(scores.device, torch.float32)
    return scores


def mean_maxsim(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                length_normalize: bool = True, device: str | torch.device | None = None) -> Tensor:
    """:func:`maxsim` divided by each query's number of real tokens (``length_normalize=False``: plain MaxSim)."""
    return maxsim(a, b, a_mask, b_mask, chunk_elements, length_normalize, device)


def mean_maxsim_pairwise(a: Any, b: Any, a_mask: Any = None, b_mask: Any = None, chunk_elements: int | None = None,
                         length_normalize: bool = True, device: str | torch.device | None = None) -> Tensor:
    """:func:`maxsim_pairwise` divided by each query's number of real tokens."""
    return maxsim_pairwise(a, b, a_mask, b_mask, chunk_elements, length_normalize, device)


#: similarity name -> (all pairs, pairwise)
SIMILARITIES = {"maxsim": (maxsim, maxsim_pairwise), "meanmaxsim": (mean_maxsim, mean_maxsim_pairwise)}

__all__ = ["maxsim", "maxsim_pairwise", "mean_maxsim", "mean_maxsim_pairwise", "SIMILARITIES", "fill_empty_scores",
           "chunk_ranges"]
