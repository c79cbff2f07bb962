"""The lexical (BM25) side of an :class:`~sentencekit.search.index.EmbeddingIndex`, backed by bm25s.

Texts are tokenized as bm25s recommends: lower-cased words of 2+ characters (scikit-learn's pattern),
English stopwords removed, Snowball English stemming (PyStemmer). Scores are BM25 with the Lucene
variant of Robertson and Zaragoza's formula (bm25s defaults: ``k1 = 1.5``, ``b = 0.75``).

Why bm25s rather than tantivy (``benchmarks/lexical_engines.py``: InsuranceQA answers and test
questions, top 10, one query at a time, both with English stopwords and stemming, a shared 2-core CPU):

================================  ============  ==============  ===============
corpus                          engine        build (s)       query (ms)
================================  ============  ==============  ===============
5,000 answers, 500 questions      bm25s 0.3     0.39            0.17
                                  tantivy 0.27  0.19            0.13
27,413 answers, 2,000 questions   bm25s 0.3     2.59            0.44
                                  tantivy 0.27  0.53            0.60
================================  ============  ==============  ===============

Ranking quality is the same (MRR@10 0.473 vs 0.479 and 0.302 vs 0.311). tantivy builds 2-5x faster,
but bm25s is what this index needs: its whole state is three NumPy arrays (a CSC matrix of precomputed
BM25 weights, documents x terms) plus a term list, so it goes through the index's own commit protocol
(temporary file, ``os.replace``, sizes and SHA-256 in the manifest, ``verify`` and ``repair``) like the
vectors, with no second storage engine keeping its own segment files, merge threads and lock beside
ours; and it needs only NumPy and PyStemmer's small C stemmer (tantivy is a Rust engine with its own format).

BM25 weights depend on corpus-wide statistics (document frequencies, mean length), and bm25s builds a
static matrix, so every committed write (``add``, ``delete``, ``compact``, ``repair``) of an index that
keeps a lexical side rebuilds it from the live documents' stored texts: about 0.1 ms per document
(2.6 s for 27k documents above), on top of embedding the new documents.

Persistence never uses pickle (index folders may come from untrusted places): ``.npy`` arrays loaded
with ``allow_pickle=False`` and a JSON file of terms and document ids::

    segments/lex-000004-1a2b3c4d.bm25data.npy      float32 BM25 weight of each (document, term) entry
    segments/lex-000004-1a2b3c4d.bm25indices.npy   int32 document row of each entry
    segments/lex-000004-1a2b3c4d.bm25indptr.npy    int64 [terms + 1] start of each term's entries
    segments/lex-000004-1a2b3c4d.terms.json        {"terms": [...], "ids": [...], "params": {...}}

>>> index = LexicalIndex.build(["a", "b"], ["Refunds take five days.", "We ship worldwide."])
>>> index.top(["refund"], k=1)  # doctest: +ELLIPSIS
[[('a', 0.2605...)]]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sentencekit.files import atomic_write_bytes
from sentencekit.search.segments import Snapshot, record_files
from sentencekit.search.storage import SEGMENTS, check_size, damaged, load_npy, save_npy

PARAMS = {"k1": 1.5, "b": 0.75, "method": "lucene", "stopwords": "en", "stemmer": "english"}
ROLES = {"data": "bm25data.npy", "indices": "bm25indices.npy", "indptr": "bm25indptr.npy", "terms": "terms.json"}
INSTALL_HINT = "pip install 'sentencekit[hybrid]' (bm25s and PyStemmer)"


def import_bm25s() -> Any:
    """Import bm25s (and check PyStemmer), or raise ``ImportError`` saying what to install.

    >>> import_bm25s().__name__  # doctest: +SKIP
    'bm25s'
    """
    try:
        import bm25s
        import Stemmer  # noqa: F401  (PyStemmer; the tokenizer needs it)
    except ImportError as exc:
        raise ImportError(f"The lexical (BM25) side of the index needs bm25s and PyStemmer ({exc.name} is missing): "
                          f"{INSTALL_HINT}.") from exc
    return bm25s


def lexical_available() -> bool:
    """Whether bm25s and PyStemmer are installed.

    >>> isinstance(lexical_available(), bool)
    True
    """
    try:
        import_bm25s()
    except ImportError:
        return False
    return True


def tokenize(texts: list[str]) -> list[list[str]]:
    """Tokens of each text: lower-cased words, English stopwords removed, stemmed.

    >>> tokenize(["The refunds are paid", "the and of"])
    [['refund', 'paid'], []]
    """
    bm25s = import_bm25s()
    import Stemmer

    return bm25s.tokenize(list(texts), stopwords=PARAMS["stopwords"], stemmer=Stemmer.Stemmer(PARAMS["stemmer"]),
                          return_ids=False, show_progress=False)


def best_chunk(query: str, chunks: list[str]) -> int:
    """Index of the chunk holding the most occurrences of the query's terms (the first on ties): where in
    a chunked document BM25, which scores whole documents, found its match.

    >>> best_chunk("refund code ZEBRA42", ["the weather is mild", "your refund code is ZEBRA42"])
    1
    """
    terms, *tokenized = tokenize([query, *chunks])
    wanted = set(terms)
    counts = [sum(token in wanted for token in tokens) for tokens in tokenized]
    return max(range(len(counts)), key=lambda i: (counts[i], -i)) if counts else 0


class LexicalIndex:
    """BM25 over a fixed list of documents (string ids, in index order), queried by text.

    Build with :meth:`build`; the index stores it with :func:`write_lexical` / :func:`load_lexical`.

    >>> LexicalIndex.build([], []).top(["anything"], k=3)
    [[]]
    """

    def __init__(self, ids: list[str], terms: list[str], arrays: dict[str, np.ndarray] | None) -> None:
        """``arrays``: bm25s's CSC matrix (``data``, ``indices``, ``indptr``); ``None`` for no documents."""
        self.ids = list(ids)
        self.terms = list(terms)
        self.arrays = arrays
        self._term_id = {t: i for i, t in enumerate(self.terms)}
        self._retriever = None
        if arrays is not None:
            retriever = import_bm25s().BM25(k1=PARAMS["k1"], b=PARAMS["b"], method=PARAMS["method"])
            # what bm25s.BM25.load sets, from our own (pickle-free, checksummed) files
            retriever.scores = {**arrays, "num_docs": len(self.ids)}
            retriever.vocab_dict = self._term_id
            retriever.unique_token_ids_set = set(self._term_id.values())
            retriever.nonoccurrence_array = None
            self._retriever = retriever

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> LexicalIndex:
        """Tokenize ``texts`` and build their BM25 matrix (``ids[i]`` names ``texts[i]``).

        >>> sorted(LexicalIndex.build(["a"], ["Refunds take five days."]).terms)
        ['day', 'five', 'refund', 'take']
        """
        if len(ids) != len(texts):
            raise ValueError(f"Got {len(ids)} ids for {len(texts)} texts.")
        if not texts:
            return cls([], [], None)
        retriever = import_bm25s().BM25(k1=PARAMS["k1"], b=PARAMS["b"], method=PARAMS["method"])
        retriever.index(tokenize(texts), show_progress=False)
        scores = retriever.scores
        n_terms = len(scores["indptr"]) - 1
        terms = [""] * n_terms
        for term, i in retriever.vocab_dict.items():
            if i < n_terms:  # bm25s adds an empty token past the matrix's last column; it scores nothing
                terms[i] = term
        arrays = {"data": np.asarray(scores["data"], np.float32), "indices": np.asarray(scores["indices"], np.int32),
                  "indptr": np.asarray(scores["indptr"], np.int64)}
        return cls(ids, terms, arrays)

    def top(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        """Per query, up to ``k`` ``(document id, BM25 score)``, best first (ties: index order). Only
        documents sharing a term with the query are returned: a query of stopwords or unknown words
        gets ``[]``.

        >>> pets = LexicalIndex.build(["a", "b"], ["cats sleep", "dogs bark"])
        >>> pets.top(["a sleeping cat", "the"], k=5)  # doctest: +ELLIPSIS
        [[('a', 0.5545...)], []]
        """
        if self._retriever is None:
            return [[] for _ in queries]
        out = []
        for tokens in tokenize(queries):
            term_ids = [self._term_id[t] for t in tokens if t in self._term_id]
            if not term_ids:
                out.append([])
                continue
            scores = self._retriever.get_scores_from_ids(term_ids)
            hits = np.flatnonzero(scores > 0)
            if len(hits) > k:
                hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
            hits = hits[np.lexsort((hits, -scores[hits]))]
            out.append([(self.ids[i], float(scores[i])) for i in hits])
        return out


def write_lexical(root: str | os.PathLike, name: str, snap: Snapshot) -> dict[str, Any]:
    """Build the lexical side of the live documents of ``snap`` (their stored texts, whole even when
    chunked) and write its files under ``segments/`` (each through a temporary file and ``os.replace``);
    returns its manifest entry (sizes and SHA-256 in ``"checks"``). Nothing refers to the files until a
    manifest listing the entry is committed.

    >>> write_lexical(folder, "lex-000003-1a2b3c4d", snapshot)["docs"]  # doctest: +SKIP
    2
    """
    ids = list(snap.live)
    # a title is part of what BM25 matches, as in any search engine's title field
    index = LexicalIndex.build(ids, [f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]
                                     for doc in (snap.docs[number] for number in snap.live.values())])
    folder = Path(root) / SEGMENTS
    roles = {role: f"{name}.{suffix}" for role, suffix in ROLES.items()} if index.arrays is not None else {}
    if roles:
        for role in ("data", "indices", "indptr"):
            save_npy(folder / roles[role], index.arrays[role])
        terms = {"terms": index.terms, "ids": index.ids, "params": PARAMS}
        atomic_write_bytes(folder / roles["terms"], json.dumps(terms, ensure_ascii=False).encode("utf-8"))
    files = sorted(roles.values())
    return {"kind": "lexical", "name": name, "docs": len(ids), "terms": len(index.terms), "params": PARAMS,
            "roles": roles, "files": files, "checks": record_files(root, files)}


def load_lexical(root: str | os.PathLike, entry: dict[str, Any]) -> LexicalIndex:
    """Load a committed lexical side, checking its files against the entry (sizes, shapes, counts).
    Damage raises :class:`~sentencekit.search.index_errors.IndexFormatError` naming the file; a missing file
    raises ``FileNotFoundError`` (a concurrent writer may have replaced it: re-read the manifest).

    >>> load_lexical(folder, manifest["lexical"]).top(["refund"], k=1)  # doctest: +SKIP
    [[('refund', ...)]]
    """
    folder, roles, checks = Path(root) / SEGMENTS, entry.get("roles", {}), entry.get("checks", {})
    if entry.get("params", PARAMS) != PARAMS:
        # written by a sentencekit with other tokenization or BM25 settings: its terms would not match queries
        raise damaged(folder / roles.get("terms", entry["name"]), f"built with other settings {entry.get('params')} "
                                                                  f"than this sentencekit's {PARAMS}")
    if not roles:
        return LexicalIndex([], [], None)
    for file in roles.values():
        check_size(folder / file, checks.get(file))
    arrays = {role: load_npy(folder / roles[role]) for role in ("data", "indices", "indptr")}
    path = folder / roles["terms"]
    try:
        stored = json.loads(path.read_text("utf-8"))
        terms, ids = stored["terms"], stored["ids"]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise damaged(path, f"not a readable terms file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(terms, list) or not isinstance(ids, list) or len(ids) != entry["docs"]:
        raise damaged(path, f"expected {entry['docs']} document ids and a list of terms")
    data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
    if indptr.ndim != 1 or len(indptr) != len(terms) + 1:
        raise damaged(folder / roles["indptr"], f"holds {indptr.shape} offsets for {len(terms)} terms")
    if data.shape != indices.shape or data.ndim != 1 or (len(indptr) and int(indptr[-1]) != len(data)):
        raise damaged(folder / roles["data"], f"holds {data.shape} weights and {indices.shape} rows; "
                                              f"the offsets end at {int(indptr[-1]) if len(indptr) else 0}")
    if len(indices) and (int(indices.max()) >= len(ids) or int(indices.min()) < 0):
        raise damaged(folder / roles["indices"], f"refers to document rows outside 0..{len(ids) - 1}")
    return LexicalIndex(ids, terms, arrays)


__all__ = ["LexicalIndex", "write_lexical", "load_lexical", "tokenize", "import_bm25s", "lexical_available"]
