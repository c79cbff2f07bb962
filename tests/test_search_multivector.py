"""Late-interaction (multi-vector, ColBERT) retrieval in EmbeddingIndex (issue 15, the index slice): NumPy MaxSim
against brute force, exact search equal to brute-force MaxSim, candidate (PLAID-style centroid) search recall on a
clustered set, the side stored per segment and kept aligned through add/delete/compact/reopen, crash safety, damage
found by verify and repaired, the multi-vector model's fingerprint checked, hybrid fusion.

The multi-vector model here is a real (if simple) token encoder: word pieces hashed to seeded random unit vectors,
returned as one float32 ``[n_tokens, dim]`` array per text, as ``MultiVectorEncoder.encode_*(...,
convert_to_numpy=True)`` returns them."""

from __future__ import annotations

import doctest
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

import sentencekit.late_interaction as late_interaction
from sentencekit.search import index as index_module
from sentencekit.search import late_interaction_side, packed_maxsim, segment_sides, token_centroids
from sentencekit.search.fusion import reciprocal_rank_fusion
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError, IndexMismatchError, IndexReadOnlyError
from sentencekit.search.late_interaction_side import PackedTokens, token_rows
from sentencekit.search.packed_maxsim import maxsim_packed, pack, reduce_maxsim
from sentencekit.search.token_centroids import CentroidIndex, cluster
from tests.test_search_hybrid import DIM, DOCS, TaggedModel
from tests.test_search_index import unit
from tests.test_search_index_damage import damage
from tests.test_search_sparse import HashingSparseEncoder

pytestmark = pytest.mark.unit

TOKEN_DIM = 24


class HashingTokenEncoder:
    """A word-piece token encoder: lower-cased words (``v<i>`` tags dropped) cut into pieces of at most 4
    letters (``refunds`` -> ``refu``, ``##nds``), each piece hashed (BLAKE2b with ``salt``) to a seeded random
    unit vector of ``dim``. Documents start with a ``[D]`` marker token, queries with ``[Q]`` and are expanded
    to at least 6 tokens with the unit mean of their pieces (as ColBERT's [MASK] tokens echo the query); a
    document with no word has no token at all (as if every token were skiplisted). Counts the texts it encodes."""

    def __init__(self, dim: int = TOKEN_DIM, salt: str = "") -> None:
        self.dim, self.salt = dim, salt
        self.model_name_or_path = f"hashing-pieces-{dim}{'-' + salt if salt else ''}"
        self.encoded = {"document": 0, "query": 0}

    def fingerprint(self) -> str:
        return hashlib.sha256(f"hashing-pieces\0{self.dim}\0{self.salt}".encode()).hexdigest()[:32]

    def vector(self, piece: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(f"{self.salt}\0{piece}".encode(), digest_size=8).digest(), "little")
        return unit(np.random.default_rng(seed).standard_normal(self.dim))

    def pieces(self, text: str) -> list[str]:
        words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if not re.fullmatch(r"v\d+", w)]
        return [("##" if i else "") + w[i:i + 4] for w in words for i in range(0, len(w), 4)]

    def _encode(self, texts: list[str], query: bool) -> list[np.ndarray]:
        self.encoded["query" if query else "document"] += len(texts)
        out = []
        for text in texts:
            pieces = [self.vector(p) for p in self.pieces(text)]
            if query:
                echo = [unit(np.sum(pieces, axis=0))] if pieces else []
                tokens = [self.vector("[Q]"), *pieces] + echo * max(0, 5 - len(pieces))
            else:
                tokens = [self.vector("[D]"), *pieces] if pieces else []
            out.append(np.array(tokens, np.float32).reshape(-1, self.dim))
        return out

    def encode_document(self, texts: list[str], convert_to_numpy: bool = True) -> list[np.ndarray]:
        return self._encode(list(texts), query=False)

    def encode_query(self, texts: list[str], convert_to_numpy: bool = True) -> list[np.ndarray]:
        return self._encode(list(texts), query=True)


class TableTokenEncoder:
    """Token matrices looked up by text: ``"d<i>"`` is ``docs[i]``, ``"q<i>"`` is ``queries[i]`` (anything else:
    ``docs[0]``), for sets built by :func:`clustered`."""

    model_name_or_path = "token-table"

    def __init__(self, docs: list[np.ndarray], queries: list[np.ndarray]) -> None:
        self.docs, self.queries = docs, queries

    def fingerprint(self) -> str:
        return "token-table"

    @staticmethod
    def _row(text: str) -> int:
        return int(text[1:]) if text[1:].isdigit() else 0

    def encode_document(self, texts: list[str], convert_to_numpy: bool = True) -> list[np.ndarray]:
        return [self.docs[self._row(t)] for t in texts]

    def encode_query(self, texts: list[str], convert_to_numpy: bool = True) -> list[np.ndarray]:
        return [self.queries[self._row(t)] for t in texts]


def clustered(n_topics: int = 40, per_topic: int = 30, n_queries: int = 30, dim: int = 32, seed: int = 0):
    """Documents of 8-16 tokens drawn around their topic's 12 word prototypes (plus 25% shared tokens), and
    queries of 8 tokens on random topics: same-topic documents sharing the query's words score highest."""
    rng = np.random.default_rng(seed)
    words = unit(unit(rng.standard_normal((n_topics, 1, dim))) + 0.8 * unit(rng.standard_normal((n_topics, 12, dim))))
    common = unit(rng.standard_normal((20, dim)))

    def text(topic: int, n: int) -> np.ndarray:
        own = words[topic, rng.integers(0, 12, n)]
        shared = common[rng.integers(0, 20, n)]
        base = np.where((rng.random(n) < 0.75)[:, None], own, shared)
        return unit(base + 0.3 * rng.standard_normal(base.shape) / np.sqrt(dim)).astype(np.float32)

    docs = [text(t, int(rng.integers(8, 17))) for t in range(n_topics) for _ in range(per_topic)]
    queries = [text(int(rng.integers(0, n_topics)), 8) for _ in range(n_queries)]
    return docs, queries


@pytest.fixture()
def model():
    return TaggedModel(unit(np.random.default_rng(0).standard_normal((12, DIM))).astype(np.float32))


@pytest.fixture()
def colbert():
    return HashingTokenEncoder()


def build(path: Path, model, colbert, **kwargs) -> EmbeddingIndex:
    index = EmbeddingIndex.create(path, model, multivector_model=colbert, **kwargs)
    index.add(list(DOCS.values())[:3], ids=list(DOCS)[:3])
    index.add(list(DOCS.values())[3:], ids=list(DOCS)[3:])
    return index


def ids(hits) -> list[str]:
    return [h["id"] for h in hits]


def same_hits(found: list, expected: list) -> bool:
    """The same documents in the same order with the same scores up to float32 rounding (BLAS sums a product
    in an order that depends on the shapes, so a compacted part may differ in the last bit)."""
    return [ids(hits) for hits in found] == [ids(hits) for hits in expected] and all(
        np.allclose([h["score"] for h in a], [h["score"] for h in b], rtol=1e-6, atol=1e-6)
        for a, b in zip(found, expected))


def mv_entry(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["multivector"]


def brute_force(colbert, docs: dict[str, str], query: str) -> list[tuple[str, float]]:
    """Every document by MaxSim (float64 loops over the stored, float16-rounded tokens), best first, ties in
    the order given."""
    q = colbert.encode_query([query])[0].astype(np.float64)
    scores = []
    for d in colbert.encode_document(list(docs.values())):
        d = d.astype(np.float16).astype(np.float64)
        scores.append(float(sum((d @ token).max() for token in q)) if len(d) else 0.0)
    order = sorted(range(len(docs)), key=lambda i: (-round(scores[i], 5), i))
    return [(list(docs)[i], scores[i]) for i in order]


# -- MaxSim --------------------------------------------------------------------------------------------
def maxsim(queries, documents):
    """MaxSim of lists of token matrices through the packed path the index scores with (no token: 0)."""
    widths = {np.shape(m)[-1] for m in [*queries, *documents] if np.ndim(m) == 2}
    dim = widths.pop() if len(widths) == 1 else None
    (q_tokens, q_offsets), (d_tokens, d_offsets) = pack(queries, dim), pack(documents, dim)
    if q_tokens.shape[1] != d_tokens.shape[1]:
        raise ValueError("query and document tokens differ in width: were they made by different models?")
    return maxsim_packed(q_tokens, q_offsets, d_tokens, d_offsets)


def test_packed_maxsim_equals_the_user_facing_maxsim():
    rng = np.random.default_rng(5)
    queries = [rng.standard_normal((n, 6)).astype(np.float32) for n in (4, 1, 7)]
    docs = [rng.standard_normal((n, 6)).astype(np.float32) for n in (3, 9, 1, 5)]
    np.testing.assert_allclose(maxsim(queries, docs), late_interaction.maxsim(queries, docs), atol=1e-5)


def test_maxsim_equals_brute_force_loops():
    rng = np.random.default_rng(3)
    queries = [rng.standard_normal((n, 6)).astype(np.float32) for n in (4, 0, 1, 7)]
    docs = [rng.standard_normal((n, 6)).astype(np.float32) for n in (3, 0, 9, 1, 5)]
    expected = np.array([[sum((d.astype(np.float64) @ t).max() for t in q) if len(d) else 0.0 for d in docs]
                         for q in queries])
    scores = maxsim(queries, docs)
    assert scores.dtype == np.float32 and scores.shape == (4, 5)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert not scores[1].any() and not scores[:, 1].any()  # no token: nothing to match
    q_tokens, q_offsets = pack(queries)
    d_tokens, d_offsets = pack(docs)
    for chunk in (1, 7, 40):  # tiny chunks: documents scored a few tokens at a time give the same scores
        np.testing.assert_allclose(maxsim_packed(q_tokens, q_offsets, d_tokens, d_offsets, chunk_elements=chunk),
                                   scores, atol=1e-6)
    half = maxsim_packed(q_tokens, q_offsets, d_tokens.astype(np.float16), d_offsets)  # stored float16 documents
    np.testing.assert_allclose(half, maxsim(queries, [d.astype(np.float16).astype(np.float32) for d in docs]),
                               atol=1e-5)
    np.testing.assert_allclose(maxsim_packed(q_tokens, q_offsets, d_tokens, d_offsets[2:]), scores[:, 2:], atol=1e-6)
    assert reduce_maxsim(np.array([[1.0, 5.0], [2.0, -1.0]]), np.array([0, 2]), np.array([0, 1, 2])).tolist() == [
        [3.0, 4.0]]
    assert maxsim([], docs).shape == (0, 5) and maxsim(queries, []).shape == (4, 0)
    with pytest.raises(ValueError, match=r"shape \(6,\).*one \[n_tokens, dim\] matrix per text"):
        maxsim([np.ones(6)], docs)
    with pytest.raises(ValueError, match="different models"):
        maxsim([np.ones((2, 5))], docs)


def test_docstring_examples_run():
    for module in (late_interaction, packed_maxsim, token_centroids, late_interaction_side, segment_sides):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_token_rows_refuse_what_is_not_a_multi_vector_encoder(model, colbert):
    rows = token_rows(colbert, ["refund policy", ""], query=False)
    assert rows.tokens.dtype == np.float32 and rows.offsets.tolist() == [0, 5, 5]  # [D] refu ##nd poli ##cy
    assert token_rows(colbert, ["refund"], query=True).rows == 1
    with pytest.raises(ValueError, match="must return one \\[n_tokens, dim\\] matrix per text"):
        token_rows(model, ["v1 dense"], query=False)  # a bi-encoder: one vector per text
    with pytest.raises(TypeError, match="multi-vector encoder"):
        token_rows(object(), ["x"], query=False)

    class Broken(HashingTokenEncoder):
        def encode_document(self, texts, convert_to_numpy=True):
            return [np.full((2, self.dim), np.nan, np.float32) for _ in texts]

    with pytest.raises(ValueError, match="NaN"):
        token_rows(Broken(), ["x"], query=False)


# -- exact search and candidates -------------------------------------------------------------------------
def test_exact_search_equals_brute_force_maxsim_and_round_trips(model, colbert, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model, colbert)
    index.add(["?!", "v6 Refund requests need the order number"], ids=["blank", "refund-form"])  # a row without tokens
    live = {**DOCS, "blank": "?!", "refund-form": "v6 Refund requests need the order number"}
    entry = mv_entry(path)
    assert entry["dim"] == TOKEN_DIM and entry["dtype"] == "float16"
    assert entry["model"]["fingerprint"] == colbert.fingerprint()
    log = json.loads((path / "manifest.json").read_text())["log"]
    assert [(p["segment"], p["rows"]) for p in entry["parts"]] == [(s["name"], s["rows"]) for s in log]
    assert set(entry["checks"]) == set(entry["files"]) and len(entry["files"]) == 12

    for query in ("refund within five days", "password login page", "closed holidays", "zebra"):
        hits = index.search(query, top_k=10, retrieval="multivector")
        expected = brute_force(colbert, live, query)
        assert ids(hits) == [i for i, _ in expected]
        np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], atol=1e-5)
        assert hits == index.search(query, top_k=10, retrieval="multivector", nprobe=0)  # small parts: exact
        assert all(h["found_by"] == {"multivector": {"rank": r, "score": h["score"]}} for r, h in enumerate(hits, 1))
    assert next(h for h in index.search("refund", top_k=10, retrieval="multivector") if h["id"] == "blank")[
        "score"] == 0.0
    batch = index.search(["refund days", "ship parcels"], top_k=2, retrieval="multivector")
    assert [ids(hits) for hits in batch] == [[i for i, _ in brute_force(colbert, live, q)[:2]]
                                             for q in ("refund days", "ship parcels")]

    reopened = EmbeddingIndex.open(path, model, multivector_model=HashingTokenEncoder())
    assert reopened.search("refund within five days", retrieval="multivector") == index.search(
        "refund within five days", retrieval="multivector")
    for name in entry["files"]:  # no pickle: every file is an .npy array loadable without it
        assert name.endswith(".npy") and np.load(path / "segments" / name, allow_pickle=False).ndim in (1, 2)
    tokens = np.load(path / "segments" / entry["parts"][0]["roles"]["tokens"], allow_pickle=False)
    assert tokens.dtype == np.float16 and tokens.shape == (entry["parts"][0]["tokens"], TOKEN_DIM)
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}


def test_candidate_search_recall_on_a_clustered_set(model, tmp_path, monkeypatch):
    docs, queries = clustered()
    table = TableTokenEncoder(docs, queries)
    index = EmbeddingIndex.create(tmp_path / "idx", model, multivector_model=table)
    index.add([f"d{i}" for i in range(len(docs))], ids=[f"d{i}" for i in range(len(docs))])
    part = mv_entry(index.path)["parts"][0]
    assert part["rows"] == 1200 and 8 < part["centroids"] <= part["tokens"]
    texts = [f"q{i}" for i in range(len(queries))]
    exact = index.search(texts, top_k=10, retrieval="multivector")  # 1200 rows: under the threshold, exact
    assert exact == index.search(texts, top_k=10, retrieval="multivector", nprobe=0)
    brute = maxsim(queries, [d.astype(np.float16).astype(np.float32) for d in docs])
    for hits, row in zip(exact, brute):
        assert ids(hits) == [f"d{i}" for i in np.argsort(-row, kind="stable")[:10]]

    found = index.search(texts, top_k=10, retrieval="multivector", nprobe=2, ndocs=64)
    recall = np.mean([len(set(ids(f)) & set(ids(e))) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.9
    exact_scores = {h["id"]: h["score"] for hits in exact for h in hits}
    for hits, row in zip(found, brute):  # candidates are re-scored exactly: their scores are MaxSim scores
        np.testing.assert_allclose([h["score"] for h in hits], [row[int(h["id"][1:])] for h in hits], atol=1e-5)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert any(h["id"] in exact_scores for hits in found for h in hits)
    narrow = index.search(texts, top_k=10, retrieval="multivector", nprobe=1, ndocs=10)
    assert all(len(hits) <= 10 for hits in narrow)

    split = EmbeddingIndex.create(tmp_path / "split", model, multivector_model=table)  # three segments, one pool
    for chunk in np.array_split(np.arange(len(docs)), 3):
        split.add([f"d{i}" for i in chunk], ids=[f"d{i}" for i in chunk])
    pooled = split.search(texts, top_k=10, retrieval="multivector", nprobe=2, ndocs=128)
    assert np.mean([len(set(ids(f)) & set(ids(e))) / 10 for f, e in zip(pooled, exact)]) >= 0.9
    assert same_hits(split.search(texts, top_k=10, retrieval="multivector"), exact)  # small segments: exact

    monkeypatch.setattr(late_interaction_side, "AUTO_CENTROID_MIN_ROWS", 1000)  # the default switches by size
    default = index.search(texts, top_k=10, retrieval="multivector")
    assert default != exact and np.mean([len(set(ids(f)) & set(ids(e))) / 10 for f, e in zip(default, exact)]) >= 0.9

    index.delete([f"d{i}" for i in range(0, 1200, 2)])  # deleted rows are never candidates
    after = index.search(texts, top_k=10, retrieval="multivector", nprobe=4)
    assert all(int(h["id"][1:]) % 2 for hits in after for h in hits)
    with pytest.raises(ValueError, match="nprobe must be a non-negative integer"):
        index.search("q0", retrieval="multivector", nprobe=-1)
    with pytest.raises(ValueError, match="ndocs must be a positive integer"):
        index.search("q0", retrieval="multivector", ndocs=0)


def test_centroid_lists_and_clustering():
    rng = np.random.default_rng(1)
    tokens = unit(rng.standard_normal((300, 8))).astype(np.float32)
    centroids, codes = cluster(tokens, 32)
    assert abs(len(centroids) - 32) <= 8 and codes.min() >= 0 and codes.max() < len(centroids)
    np.testing.assert_array_equal(cluster(tokens, 32)[1], codes)  # deterministic
    offsets = np.arange(0, 301, 10)  # 30 rows of 10 tokens
    lists = CentroidIndex(codes, offsets, len(centroids))
    for c in range(len(centroids)):  # each list holds exactly the rows with a token of that centroid
        assert lists.rows_of(np.array([c])).tolist() == sorted({t // 10 for t in np.flatnonzero(codes == c)})
    query = tokens[[5, 17, 250]]
    scores = query @ centroids.T
    rows, approx_scores = lists.candidates(scores, nprobe=len(centroids), ndocs=30)
    assert sorted(rows.tolist()) == list(range(30))  # probing every centroid reaches every row
    approx = [sum(scores[i, codes[r * 10:(r + 1) * 10]].max() for i in range(3)) for r in rows]
    assert approx == sorted(approx, reverse=True)  # ranked by centroid interaction
    np.testing.assert_allclose(lists.interaction(scores, rows), approx, atol=1e-5)
    np.testing.assert_allclose(approx_scores, approx, atol=1e-5)
    alive = np.ones(30, bool)
    alive[rows[:5]] = False
    assert not set(lists.candidates(scores, nprobe=4, ndocs=30, alive=alive)[0].tolist()) & set(rows[:5].tolist())
    assert lists.candidates(scores, nprobe=2, ndocs=3)[0].tolist() == lists.candidates(scores, nprobe=2, ndocs=30)[
        0][:3].tolist()


# -- the side in the index --------------------------------------------------------------------------------
def test_add_delete_compact_and_reopen_keep_the_parts_aligned(model, colbert, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model, colbert)
    assert colbert.encoded["document"] == 1 + 5  # the dimension probe, then each document once
    index.add(["v6 Refund requests need the order number"], ids=["refund-form"])
    assert colbert.encoded["document"] == 7  # adds encode only the new documents
    live = {**DOCS, "refund-form": "v6 Refund requests need the order number"}
    index.delete(["refund", "returns"])
    for gone in ("refund", "returns"):
        live.pop(gone)
    assert len(mv_entry(path)["parts"]) == 3  # deletes leave the parts; deleted rows are masked
    assert ids(index.search("refund", retrieval="multivector")) == [i for i, _ in brute_force(colbert, live, "refund")]
    queries = ["refund days", "password reset", "parcel tracked delivery", "sundays"]
    before = [index.search(q, retrieval="multivector") for q in queries]

    encoded = colbert.encoded["document"]
    index.compact()
    assert colbert.encoded["document"] == encoded  # compaction carries the stored tokens, it encodes nothing
    entry = mv_entry(path)
    assert len(entry["parts"]) == 1 and entry["parts"][0]["rows"] == len(live) == len(index)
    assert same_hits([index.search(q, retrieval="multivector") for q in queries], before)
    names = {p.name for p in (path / "segments").iterdir() if p.name.startswith("mvr-")}
    assert names == set(entry["files"])  # the parts of compacted segments are removed with them
    reopened = EmbeddingIndex.open(path, model, multivector_model=colbert)
    assert same_hits([reopened.search(q, retrieval="multivector") for q in queries], before)
    assert EmbeddingIndex.verify(path)["ok"]
    reopened.delete(list(live))
    reopened.compact()  # nothing live: no segments, no parts
    assert mv_entry(path)["parts"] == [] and reopened.search("refund", retrieval="multivector") == []


def test_chunked_documents_report_the_chunk_the_multivector_side_found(tiny_model, colbert, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model, multivector_model=colbert)
    text = " ".join(["the weather in paris is mild today"] * 12 + ["your refund code is zebra42"])
    index.add([text, "shipping takes five days"], ids=["manual", "ship"], chunk=True, chunk_size=16, chunk_overlap=0)
    rows = index.manifest["log"][0]["rows"]
    assert rows > 2 and mv_entry(index.path)["parts"][0]["rows"] == rows  # one token matrix per chunk
    hits = index.search("zebra42 refund code", top_k=5, retrieval="multivector")
    assert ids(hits) == ["manual", "ship"] and hits[0]["chunk"]["index"] > 0  # once each, not per chunk
    assert "zebra42" in hits[0]["chunk"]["text"]


def test_enable_multivector_on_an_existing_index(model, colbert, tmp_path):
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, model)
    index.add(list(DOCS.values())[:3], ids=list(DOCS)[:3])
    index.add(list(DOCS.values())[3:], ids=list(DOCS)[3:])
    index.delete("hours")
    with pytest.raises(ValueError, match="keeps no multi-vector side.*enable_multivector"):
        index.search("refund", retrieval="multivector")
    index.enable_multivector(colbert)
    live = {k: v for k, v in DOCS.items() if k != "hours"}
    for query in ("refund days", "closed sundays"):
        assert ids(index.search(query, retrieval="multivector")) == [i for i, _ in brute_force(colbert, live, query)]
    other = build(tmp_path / "built-with-it", model, HashingTokenEncoder())
    other.delete("hours")
    assert same_hits([index.search("refund days", retrieval="multivector")],
                     [other.search("refund days", retrieval="multivector")])
    index.enable_multivector(colbert)  # already kept: nothing to do
    with pytest.raises(IndexMismatchError, match="multi-vector model fingerprint"):
        index.enable_multivector(HashingTokenEncoder(salt="other"))


# -- refusing mixed models and bad input ------------------------------------------------------------------
def test_another_multivector_model_is_refused_naming_both_fingerprints(model, colbert, tmp_path):
    path = tmp_path / "idx"
    build(path, model, colbert)
    other = HashingTokenEncoder(salt="retrained")
    with pytest.raises(IndexMismatchError) as err:
        EmbeddingIndex.open(path, model, multivector_model=other)
    message = str(err.value)
    assert colbert.fingerprint() in message and other.fingerprint() in message
    assert "hashing-pieces-24-retrained" in message and "multi-vector model fingerprint" in message
    with pytest.raises(IndexMismatchError, match="multi-vector model fingerprint"):
        EmbeddingIndex.repair(path, multivector_model=other)
    with pytest.raises(TypeError, match="multi-vector encoder"):
        EmbeddingIndex.open(path, model, multivector_model=object())
    with pytest.raises(ValueError, match="one \\[n_tokens, dim\\] matrix per text"):  # a dense bi-encoder
        EmbeddingIndex.create(tmp_path / "dense-as-multivector", model, multivector_model=model)
    assert not (tmp_path / "dense-as-multivector" / "manifest.json").exists()


def test_bad_token_vectors_commit_nothing(model, colbert, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model, colbert)
    manifest = (path / "manifest.json").read_bytes()
    colbert.dim = 8  # the same model (fingerprint) now returns other-sized tokens: refused before any write
    with pytest.raises(IndexMismatchError, match="8-dimensional token vectors.*24-dimensional"):
        index.add(["v7 a new document"], ids=["new"])
    colbert.dim = TOKEN_DIM

    class Huge(HashingTokenEncoder):
        def encode_document(self, texts, convert_to_numpy=True):
            return [1e6 * m for m in super().encode_document(texts)]

    huge = EmbeddingIndex.open(path, model, multivector_model=Huge())
    with pytest.raises(ValueError, match="float16 range"):
        huge.add(["v7 a new document"], ids=["new"])
    assert (path / "manifest.json").read_bytes() == manifest and "new" not in index
    assert EmbeddingIndex.verify(path)["ok"]


def test_opened_without_the_multivector_model(model, colbert, tmp_path):
    path = tmp_path / "idx"
    build(path, model, colbert)
    index = EmbeddingIndex.open(path, model)  # dense search, delete and compact need no multi-vector model
    assert ids(index.search("v1", top_k=1)) == ["refund"]
    for call in (lambda: index.add(["v9 new"], ids=["new"]), lambda: index.search("refund", retrieval="multivector"),
                 lambda: index.search("refund", retrieval="hybrid")):
        with pytest.raises(IndexReadOnlyError, match=f"model 'hashing-pieces-24', fingerprint {colbert.fingerprint()}"
                                                     ".*multivector_model="):
            call()
    assert "new" not in index
    index.delete("password")
    index.compact()
    hits = EmbeddingIndex.open(path, model, multivector_model=colbert).search("password reset", retrieval="multivector")
    assert "password" not in ids(hits) and EmbeddingIndex.verify(path)["ok"]


# -- hybrid fusion ------------------------------------------------------------------------------------
def test_hybrid_fuses_dense_and_multivector_and_sparse(model, colbert, tmp_path):
    index = build(tmp_path / "idx", model, colbert)
    query = "v4 reset password"  # dense: row 4 ("hours") first; multivector: "password"
    dense = index.search(query, top_k=5)
    multi = index.search(query, top_k=5, retrieval="multivector")
    assert dense[0]["id"] == "hours" and multi[0]["id"] == "password"
    hits = index.search(query, top_k=5, retrieval="hybrid")
    expected = reciprocal_rank_fusion([ids(dense), ids(multi)])
    assert [(h["id"], h["score"]) for h in hits] == [(k, pytest.approx(s)) for k, s in expected]
    assert set(hits[0]["found_by"]) == {"dense", "multivector"}
    with pytest.raises(ValueError, match=r"3 weights for the 2 sides this index fuses \(dense, multivector\)"):
        index.search(query, retrieval="hybrid", fusion_weights=(1, 1, 1))

    both = EmbeddingIndex.create(tmp_path / "three", model, sparse_model=HashingSparseEncoder(),
                                 multivector_model=HashingTokenEncoder())
    both.add(list(DOCS.values()), ids=list(DOCS))
    sparse = both.search(query, top_k=5, retrieval="sparse")
    three = both.search(query, top_k=5, retrieval="hybrid", fusion_weights=(1, 2, 0.5))  # dense, sparse, multivector
    expected = reciprocal_rank_fusion([ids(dense), ids(sparse), ids(multi)], weights=[1, 2, 0.5])
    assert [(h["id"], h["score"]) for h in three] == [(k, pytest.approx(s)) for k, s in expected]
    assert set(three[0]["found_by"]) == {"dense", "sparse", "multivector"}
    picked = both.search(query, top_k=5, retrieval="hybrid", fusion_weights={"multivector": 1, "sparse": 1})
    assert [h["id"] for h in picked] == [k for k, _ in reciprocal_rank_fusion([ids(sparse), ids(multi)])]
    assert EmbeddingIndex.verify(both.path)["ok"]


# -- crashes and damage --------------------------------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying between writing its files and committing the manifest."""


def test_crash_between_writing_the_parts_and_committing_leaves_the_committed_state(model, colbert, tmp_path,
                                                                                   monkeypatch):
    path = tmp_path / "idx"
    index = build(path, model, colbert)
    before = index.search("refund days", retrieval="multivector")
    committed = set((path / "segments").iterdir())

    def die():
        raise Crash

    monkeypatch.setattr(index_module, "pause_before_commit", die)
    for write in (lambda: index.add(["v8 refund desk opens at nine"], ids=["desk"]), index.compact):
        with pytest.raises(Crash):
            write()
        orphans = {p.name for p in set((path / "segments").iterdir()) - committed}
        assert any(n.startswith("mvr-") and n.endswith(".mvtokens.npy") for n in orphans)  # written in full
    monkeypatch.undo()
    # a half-written part too (a temporary file cut short, and a renamed one)
    (path / "segments" / ".mvr-000099-deadbeef.mvtokens.npy.tmp-x").write_bytes(b"\x93NUMPY")
    (path / "segments" / "mvr-000099-deadbeef.mvoffsets.npy").write_bytes(b"\x93NUMPY\x01\x00")

    reopened = EmbeddingIndex.open(path, model, multivector_model=colbert)
    assert "desk" not in reopened and reopened.search("refund days", retrieval="multivector") == before
    assert EmbeddingIndex.verify(path)["ok"] and len(mv_entry(path)["parts"]) == 2
    reopened.add(["v9 Refunds for gift cards"], ids=["gift"])  # the next writer removes the orphans
    names = {p.name for p in (path / "segments").iterdir()}
    manifest = json.loads((path / "manifest.json").read_text())
    assert names == set().union(*(set(e["files"]) for e in [*manifest["log"], manifest["multivector"]]))
    assert "gift" in ids(reopened.search("refund gift cards", retrieval="multivector"))


@pytest.mark.parametrize("how", ["truncate", "empty"])
@pytest.mark.parametrize("role", ["tokens", "offsets", "codes", "centroids"])
def test_damaged_part_file_is_named_and_repaired(model, colbert, tmp_path, role, how):
    path = tmp_path / "idx"
    index = build(path, model, colbert)
    before = index.search("refund days", retrieval="multivector")
    name = mv_entry(path)["parts"][1]["roles"][role]
    damage(path / "segments" / name, how)
    reopened = EmbeddingIndex.open(path, model, multivector_model=colbert)
    assert ids(reopened.search("v1", top_k=1)) == ["refund"]  # the vectors are intact: dense search works
    with pytest.raises(IndexFormatError, match="damaged") as err:
        reopened.search("refund days", retrieval="multivector")
    assert name in str(err.value) and "sentencekit index repair" in str(err.value)
    assert [(p["file"], p["kind"]) for p in EmbeddingIndex.verify(path)["problems"]] == [(name, "multivector")]

    report = EmbeddingIndex.repair(path, multivector_model=colbert)  # re-encodes that part from the stored texts
    assert report["multivector"] == "rebuilt" and report["lost_ids"] == [] and f"damaged/{name}" in report["moved"]
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}
    reopened = EmbeddingIndex.open(path, model, multivector_model=colbert)
    assert same_hits([reopened.search("refund days", retrieval="multivector")], [before])


@pytest.mark.parametrize("role", ["tokens", "codes"])
def test_same_size_damage_is_found_by_verify_and_repair_without_the_model_drops_the_side(model, colbert, tmp_path,
                                                                                          role):
    path = tmp_path / "idx"
    build(path, model, colbert)
    name = mv_entry(path)["parts"][0]["roles"][role]
    damage(path / "segments" / name, "flip")  # same size: only checksums tell
    problems = EmbeddingIndex.verify(path)["problems"]
    assert [(p["file"], p["kind"], "SHA-256" in p["problem"]) for p in problems] == [(name, "multivector", True)]
    report = EmbeddingIndex.repair(path)
    assert report["multivector"] == "dropped" and report["lost_ids"] == [] and EmbeddingIndex.verify(path)["ok"]
    index = EmbeddingIndex.open(path, model, multivector_model=colbert)
    assert len(index) == 5 and "multivector" not in index.manifest
    index.enable_multivector()  # rebuilt from the stored texts
    assert ids(index.search("refund days", retrieval="multivector")) == [
        i for i, _ in brute_force(colbert, DOCS, "refund days")]


def test_a_part_that_lies_about_its_contents_is_damaged(model, colbert, tmp_path):
    path = tmp_path / "idx"
    build(path, model, colbert)
    part = mv_entry(path)["parts"][0]
    codes = np.load(path / "segments" / part["roles"]["codes"], allow_pickle=False)
    bad = np.full_like(codes, part["centroids"])  # codes past the last centroid, written with a matching record
    np.save(path / "segments" / part["roles"]["codes"], bad, allow_pickle=False)
    manifest = json.loads((path / "manifest.json").read_text())
    from sentencekit.search.storage import file_record

    manifest["multivector"]["checks"][part["roles"]["codes"]] = file_record(path / "segments" / part["roles"]["codes"])
    (path / "manifest.json").write_text(json.dumps(manifest))
    problems = EmbeddingIndex.verify(path)["problems"]
    assert len(problems) == 1 and "refers to centroids outside" in problems[0]["problem"]
    with pytest.raises(IndexFormatError, match="refers to centroids outside"):
        EmbeddingIndex.open(path, model, multivector_model=colbert).search("refund", retrieval="multivector")

    manifest["multivector"]["parts"] = manifest["multivector"]["parts"][::-1]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert any("multi-vector side has parts for segments" in p["problem"] for p in EmbeddingIndex.verify(path)[
        "problems"])


def test_packed_tokens_select_and_side_rows(colbert):
    packed = PackedTokens.of(colbert.encode_document(["refund policy", "", "ship parcels worldwide"]))
    picked = packed.select(np.array([2, 0, 1]))
    assert picked.offsets.tolist() == [0, 7, 12, 12]
    np.testing.assert_array_equal(picked.tokens[:7], packed.tokens[5:12])
    more = colbert.encode_document(["closed on sundays", "v1 refund"])
    side = late_interaction_side.LateInteractionSide(
        [late_interaction_side.TokenPart.build(packed), late_interaction_side.TokenPart.build(PackedTokens.of(more))],
        dim=TOKEN_DIM)
    matrices = colbert.encode_document(["refund policy", "", "ship parcels worldwide"]) + more
    for rows in ([4, 0, 3, 1], [0, 1, 2, 3, 4], [3], []):  # any order, across parts: what compaction carries
        carried = side.rows(np.array(rows, np.int64))
        expected = PackedTokens.of([matrices[r] for r in rows], TOKEN_DIM)
        assert carried.tokens.dtype == np.float16 and carried.offsets.tolist() == expected.offsets.tolist()
        np.testing.assert_array_equal(carried.tokens, expected.tokens.astype(np.float16))
