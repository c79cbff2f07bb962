"""Quantized search with FAISS, as sentence-transformers' ``semantic_search_faiss``.

FAISS is optional: it is imported on first use, and a missing install raises an ``ImportError`` that
says how to get it (``pip install sentencekit[faiss]``).

>>> import numpy as np
>>> corpus = np.eye(4, dtype=np.float32)
>>> results, seconds = semantic_search_faiss(corpus[:1], corpus, top_k=2)  # doctest: +SKIP
>>> results[0][0]                                                            # doctest: +SKIP
{'corpus_id': 0, 'score': 1.0}
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np

from sentencekit.quantization import _as_numpy, quantize_embeddings

logger = logging.getLogger(__name__)

FAISS_PRECISIONS = ("float32", "uint8", "ubinary")
HNSW_M = 16  # graph degree sentence-transformers uses for its approximate FAISS indexes


def import_faiss() -> Any:
    """Import ``faiss``, or raise an ``ImportError`` saying how to install it.

    >>> faiss = import_faiss()  # doctest: +SKIP
    """
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "This feature needs the FAISS library, which is not installed. Install it with "
            "`pip install sentencekit[faiss]` (or `pip install faiss-cpu`)."
        ) from exc
    return faiss


def _new_index(faiss: Any, precision: str, width: int, exact: bool) -> Any:
    """An empty FAISS index for ``precision``; ``width`` is the row length (bytes for ubinary)."""
    ip = faiss.METRIC_INNER_PRODUCT
    if precision == "float32":
        return faiss.IndexFlatIP(width) if exact else faiss.IndexHNSWFlat(width, HNSW_M, ip)
    if precision == "uint8":
        # 8bit_direct stores each uint8 value as one byte and reconstructs it exactly: the scores are
        # those of a flat inner-product index over the uint8 values, at a quarter of the memory.
        qtype = faiss.ScalarQuantizer.QT_8bit_direct
        return faiss.IndexScalarQuantizer(width, qtype, ip) if exact else faiss.IndexHNSWSQ(width, qtype, HNSW_M, ip)
    return faiss.IndexBinaryFlat(width * 8) if exact else faiss.IndexBinaryHNSW(width * 8, HNSW_M)


def _faiss_rows(x: np.ndarray, precision: str) -> np.ndarray:
    """Rows in the dtype FAISS expects: packed bytes for binary indexes, float32 otherwise."""
    return np.ascontiguousarray(x, dtype=np.uint8 if precision == "ubinary" else np.float32)


def _ranges(queries: np.ndarray, calibration: Any) -> np.ndarray:
    data = _as_numpy(calibration) if calibration is not None else queries
    if calibration is None and len(queries) < 2:
        raise ValueError("Cannot compute uint8 quantization ranges from a single embedding; pass `ranges` or "
                         "`calibration_embeddings` from a representative set of embeddings.")
    return np.vstack((data.min(axis=0), data.max(axis=0)))


def _reconstruct(index: Any, ids: np.ndarray, precision: str) -> np.ndarray:
    """Stored rows for ``ids`` ``[nq, k]`` (FAISS's -1 padding gives a zero row)."""
    width = index.d // 8 if precision == "ubinary" else index.d
    dtype = np.uint8 if precision == "ubinary" else np.float32
    out = np.zeros((*ids.shape, width), dtype=dtype)
    valid = ids >= 0
    wanted, inverse = np.unique(ids[valid], return_inverse=True)
    if hasattr(index, "reconstruct_batch"):
        rows = index.reconstruct_batch(wanted.astype(np.int64))
    else:  # binary indexes reconstruct one row at a time
        rows = np.array([index.reconstruct(int(i)) for i in wanted], dtype=dtype).reshape(len(wanted), width)
    out[valid] = rows[inverse.reshape(-1)]
    return out


def _rescore(index: Any, precision: str, queries: np.ndarray, ids: np.ndarray, top_k: int,
             ranges: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Float queries dot the candidates' stored vectors (0/1 bits for ubinary, dequantized values for
    uint8), then the ``top_k`` best candidates per query."""
    stored = _reconstruct(index, ids, precision)
    if precision == "ubinary":
        stored = np.unpackbits(stored, axis=-1)[..., : queries.shape[-1]]
    candidates = stored.astype(np.float64)
    if precision == "uint8":
        steps = (ranges[1] - ranges[0]).astype(np.float64) / 255
        candidates = candidates * np.where(steps == 0, 1, steps) + ranges[0]
    scores = np.einsum("ij,ikj->ik", queries.astype(np.float64), candidates)
    scores[ids < 0] = -np.inf  # padding never outranks a real candidate
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    rows = np.arange(len(queries))[:, None]
    return scores[rows, order], ids[rows, order]


def semantic_search_faiss(
    query_embeddings: Any,
    corpus_embeddings: Any = None,
    corpus_index: Any = None,
    corpus_precision: Literal["float32", "uint8", "ubinary"] = "float32",
    top_k: int = 10,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
    rescore: bool = True,
    rescore_multiplier: int = 2,
    exact: bool = True,
    output_index: bool = False,
) -> tuple[list[list[dict[str, int | float]]], float] | tuple[list[list[dict[str, int | float]]], float, Any]:
    """Search a FAISS index built from ``corpus_embeddings`` (or a ready ``corpus_index``).

    Indexes: float32 -> inner product (``IndexFlatIP``, or ``IndexHNSWFlat`` when ``exact=False``);
    pass L2-normalized embeddings for cosine scores. uint8 -> one byte per value (scalar quantizer,
    HNSW variant when not exact); ubinary -> Hamming distance on packed bits (``IndexBinaryFlat`` /
    ``IndexBinaryHNSW``). Float queries are quantized like the corpus (``ranges`` or
    ``calibration_embeddings`` for uint8). With ``rescore`` and a quantized corpus,
    ``top_k * rescore_multiplier`` candidates are fetched and re-ranked by float query . stored vector
    (unpacked 0/1 bits for ubinary, dequantized values for uint8), as sentence-transformers does.

    Returns ``(results, search_seconds)``, plus the index when ``output_index``; ``results`` holds one
    list of ``{"corpus_id", "score"}`` per query, best first.

    >>> import numpy as np
    >>> from sentencekit.quantization import quantize_embeddings
    >>> corpus = np.random.default_rng(0).normal(size=(100, 64)).astype(np.float32)
    >>> binary = quantize_embeddings(corpus, "ubinary")
    >>> results, _ = semantic_search_faiss(corpus[:2], binary, corpus_precision="ubinary", top_k=3)  # doctest: +SKIP
    >>> [r[0]["corpus_id"] for r in results]                                                         # doctest: +SKIP
    [0, 1]
    """
    faiss = import_faiss()
    if corpus_embeddings is not None and corpus_index is not None:
        raise ValueError("Only corpus_embeddings or corpus_index should be used, not both.")
    if corpus_embeddings is None and corpus_index is None:
        raise ValueError("Either corpus_embeddings or corpus_index should be used.")
    if corpus_precision not in FAISS_PRECISIONS:
        raise ValueError(f"corpus_precision must be one of {', '.join(FAISS_PRECISIONS)} for faiss, "
                         f"got {corpus_precision!r}")
    queries = np.atleast_2d(_as_numpy(query_embeddings))
    if corpus_index is None:
        corpus = np.atleast_2d(_as_numpy(corpus_embeddings))
        corpus_index = _new_index(faiss, corpus_precision, corpus.shape[1], exact)
        corpus_index.add(_faiss_rows(corpus, corpus_precision))

    rescore_queries, k = None, top_k
    if queries.dtype not in (np.uint8, np.int8):
        if rescore and corpus_precision != "float32":
            rescore_queries, k = queries, top_k * rescore_multiplier
        elif rescore:
            logger.warning("Rescoring is enabled but the corpus is not quantized. Either pass `rescore=False` or "
                           'quantize the corpus with `quantize_embeddings(embeddings, precision="...")` and pass '
                           '`corpus_precision="..."` to `semantic_search_faiss`.')
        if corpus_precision == "uint8" and ranges is None:
            ranges = _ranges(queries, calibration_embeddings)
        queries = quantize_embeddings(queries, corpus_precision, ranges=ranges)
    elif rescore:
        logger.warning("Rescoring is enabled but the query embeddings are quantized. Either pass `rescore=False` "
                       "or don't quantize the query embeddings.")

    start = time.time()
    scores, ids = corpus_index.search(_faiss_rows(queries, corpus_precision), k)
    if rescore_queries is not None:
        scores, ids = _rescore(corpus_index, corpus_precision, rescore_queries, ids, top_k, ranges)
    seconds = time.time() - start

    results = [[{"corpus_id": int(i), "score": float(s)} for s, i in zip(row_scores, row_ids) if i != -1]
               for row_scores, row_ids in zip(scores, ids)]
    return (results, seconds, corpus_index) if output_index else (results, seconds)
