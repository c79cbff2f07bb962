"""Approximate nearest neighbours for large indexes: a FAISS HNSW graph over the live rows, built lazily,
cached on disk beside the vectors (``ann/hnsw-<key>.faiss``) and keyed by the committed log, so any
add, delete or compaction invalidates it.

The graph matches the index precision: float32 -> ``IndexHNSWFlat`` (inner product), int8 ->
``IndexHNSWSQ`` (8-bit scalar quantizer), ubinary -> ``IndexBinaryHNSW`` (Hamming). Candidates are
always rescored exactly with the float32 vectors by the caller.

>>> ann_key({"log": [{"files": ["seg-000001-ab.f32.npy"]}], "precision": "float32"})[:8]  # doctest: +SKIP
'5f0c1e2a'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.search.faiss_search import import_faiss
from sentencekit.search.storage import ANN

HNSW_M = 32
EF_CONSTRUCTION = 80
DEFAULT_EF_SEARCH = 128


def ann_key(manifest: dict[str, Any]) -> str:
    """Identity of the committed corpus for the cache: the log (which files, in which order) and the
    precision and graph settings.

    >>> ann_key({"log": [], "precision": "float32"}) == ann_key({"log": [], "precision": "float32"})
    True
    """
    data = {"log": [e.get("files") for e in manifest.get("log", [])], "precision": manifest.get("precision"),
            "m": HNSW_M, "ef_construction": EF_CONSTRUCTION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def build_hnsw(precision: str, vectors: np.ndarray, bits: np.ndarray | None = None) -> Any:
    """A new HNSW graph over ``vectors`` (float32) or ``bits`` (packed, for ubinary).

    >>> graph = build_hnsw("float32", np.eye(4, dtype=np.float32))  # doctest: +SKIP
    >>> graph.ntotal                                                  # doctest: +SKIP
    4
    """
    faiss = import_faiss()
    dim = vectors.shape[1]
    if precision == "ubinary":
        index = faiss.IndexBinaryHNSW(bits.shape[1] * 8, HNSW_M)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.add(np.ascontiguousarray(bits, dtype=np.uint8))
        return index
    if precision == "int8":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def load_or_build(root: str | os.PathLike, key: str, precision: str, get_rows: Any) -> Any:
    """The cached graph for ``key``, or a new one built from ``get_rows() -> (vectors, bits)`` and saved
    atomically (stale graphs of older keys are removed).

    >>> graph = load_or_build(folder, key, "float32", lambda: (vectors, None))  # doctest: +SKIP
    """
    faiss = import_faiss()
    folder = Path(root) / ANN
    path = folder / f"hnsw-{key}.faiss"
    binary = precision == "ubinary"
    if path.is_file():
        with contextlib.suppress(RuntimeError):  # unreadable cache (e.g. other FAISS version): rebuild
            return faiss.read_index_binary(str(path)) if binary else faiss.read_index(str(path))
    index = build_hnsw(precision, *get_rows())
    folder.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=folder)
    os.close(fd)
    try:
        (faiss.write_index_binary if binary else faiss.write_index)(index, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _remove_stale(folder, keep=path.name)
    return index


def _remove_stale(folder: Path, keep: str) -> None:
    for entry in folder.iterdir():
        stale_tmp = entry.name.startswith(".") and time.time() - entry.stat().st_mtime > 3600
        if entry.name != keep and (entry.name.startswith("hnsw-") or stale_tmp):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def search_hnsw(index: Any, precision: str, queries: np.ndarray, k: int, ef_search: int | None = None) -> np.ndarray:
    """Positions (in the graph's row order) of the ``k`` approximate neighbours per query; -1 pads.

    >>> search_hnsw(graph, "float32", queries, k=10)  # doctest: +SKIP
    """
    faiss = import_faiss()
    ef = max(int(ef_search or DEFAULT_EF_SEARCH), k)
    params = faiss.SearchParametersHNSW(efSearch=ef)
    if precision == "ubinary":
        query_rows = np.packbits(queries > 0, axis=-1)
    else:
        query_rows = np.ascontiguousarray(queries, dtype=np.float32)
    _, ids = index.search(query_rows, k, params=params)
    return ids.astype(np.int64)
