"""Learned-sparse retrieval in EmbeddingIndex (issue 14, the inverted-index slice): SparseIndex's exact top-k
against brute force (ties, empty queries), the sparse side stored per segment and kept aligned through
add/delete/compact, crash safety, damage named and repaired, the sparse model's fingerprint checked, and
hybrid fusion of dense + sparse (+ lexical).

The sparse model here is a real (if simple) encoder: hashed bag-of-words term frequencies over a fixed
vocabulary, returned as torch sparse COO tensors as SPLADE-style encoders return them."""

from __future__ import annotations

import doctest
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sentencekit.search import hybrid, sparse_side
from sentencekit.search import index as index_module
from sentencekit.search.fusion import reciprocal_rank_fusion, weighted_score_fusion
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError, IndexMismatchError, IndexReadOnlyError
from sentencekit.search.sparse_side import SparseIndex, sparse_rows, to_csr, top_rows
from tests.test_search_hybrid import DIM, DOCS, TaggedModel
from tests.test_search_index import unit
from tests.test_search_index_damage import damage

pytestmark = pytest.mark.unit

VOCAB = 4096
STOPWORDS = {"the", "a", "an", "and", "of", "to", "is", "are", "on", "our", "your", "with", "for", "from", "in"}


class HashingSparseEncoder:
    """A bag-of-words sparse encoder: lower-cased words (stopwords and ``v<i>`` tags dropped) hashed into
    ``vocab`` terms (BLAKE2b with ``salt``). Documents weigh a term ``log(1 + tf)``, queries ``tf``. Outputs a
    torch sparse COO tensor ``[n, vocab]``, as SparseEncoder does. Counts the texts it encodes."""

    def __init__(self, vocab: int = VOCAB, salt: str = "") -> None:
        self.vocab, self.salt = vocab, salt
        self.model_name_or_path = f"hashing-bow-{vocab}{'-' + salt if salt else ''}"
        self.encoded = {"document": 0, "query": 0}

    def fingerprint(self) -> str:
        return hashlib.sha256(f"hashing-bow\0{self.vocab}\0{self.salt}".encode()).hexdigest()[:32]

    def term(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode(), digest_size=8, salt=self.salt.encode()[:16].ljust(16, b"\0"))
        return int.from_bytes(digest.digest(), "little") % self.vocab

    def counts(self, text: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in STOPWORDS and not re.fullmatch(r"v\d+", word):
                out[self.term(word)] = out.get(self.term(word), 0) + 1
        return out

    def _encode(self, texts: list[str], query: bool) -> torch.Tensor:
        self.encoded["query" if query else "document"] += len(texts)
        rows, cols, values = [], [], []
        for i, text in enumerate(texts):
            for term, tf in self.counts(text).items():
                rows.append(i)
                cols.append(term)
                values.append(float(tf) if query else float(np.log1p(tf)))
        indices = torch.tensor([rows, cols], dtype=torch.int64).reshape(2, -1)
        return torch.sparse_coo_tensor(indices, torch.tensor(values, dtype=torch.float32), (len(texts), self.vocab),
                                       check_invariants=True)

    def encode_document(self, texts: list[str]) -> torch.Tensor:
        return self._encode(list(texts), query=False)

    def encode_query(self, texts: list[str]) -> torch.Tensor:
        return self._encode(list(texts), query=True)

    def dense(self, texts: list[str], query: bool) -> np.ndarray:
        """The same vectors as a float64 matrix, for brute force."""
        return self._encode(list(texts), query).to_dense().double().numpy()


@pytest.fixture()
def model():
    return TaggedModel(unit(np.random.default_rng(0).standard_normal((12, DIM))).astype(np.float32))


@pytest.fixture()
def splade():
    return HashingSparseEncoder()


def build(path: Path, model, splade, lexical: bool = False) -> EmbeddingIndex:
    index = EmbeddingIndex.create(path, model, sparse_model=splade, lexical=lexical)
    index.add(list(DOCS.values())[:3], ids=list(DOCS)[:3])
    index.add(list(DOCS.values())[3:], ids=list(DOCS)[3:])
    return index


def ids(hits) -> list[str]:
    return [h["id"] for h in hits]


def sparse_entry(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["sparse"]


def brute_force(splade, docs: dict[str, str], query: str) -> list[tuple[str, float]]:
    """Every document with a non-zero dot product, best first, ties in the order given."""
    scores = splade.dense(list(docs.values()), query=False) @ splade.dense([query], query=True)[0]
    order = sorted((i for i in range(len(docs)) if scores[i] != 0), key=lambda i: (-scores[i], i))
    return [(list(docs)[i], float(scores[i])) for i in order]


def random_csr(rng, n: int, vocab: int, active: int) -> sp.csr_matrix:
    """Rows of ``active`` distinct terms with small integer weights (exact in float32, so ties are real)."""
    cols = np.stack([rng.choice(vocab, active, replace=False) for _ in range(n)]) if n else np.zeros((0, active))
    weights = rng.integers(1, 4, size=cols.shape).astype(np.float32)
    return sp.csr_matrix((weights.ravel(), cols.ravel().astype(np.int64), np.arange(0, n * active + 1, active)),
                         shape=(n, vocab))


def reference_top(docs: sp.csr_matrix, queries: sp.csr_matrix, k: int, alive=None) -> list[list[tuple[int, float]]]:
    scores = (queries.astype(np.float64) @ docs.astype(np.float64).T).toarray()
    out = []
    for row in scores:
        rows = [r for r in np.flatnonzero(row) if alive is None or alive[r]]
        out.append([(int(r), float(row[r])) for r in sorted(rows, key=lambda r: (-row[r], r))[:k]])
    return out


# -- SparseIndex: exact top-k ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 5, 50, 10_000])
def test_exact_top_k_equals_brute_force_with_ties_in_row_order(k):
    rng = np.random.default_rng(k)
    docs = random_csr(rng, 600, 300, 12)  # 300 terms: many shared terms, many equal integer scores
    queries = random_csr(rng, 25, 300, 4)
    found = SparseIndex(docs).top(queries, k)
    assert found == reference_top(docs, queries, k)
    assert any(len({s for _, s in hits}) < len(hits) for hits in found) or k == 1  # ties were exercised


def test_alive_mask_and_one_row_per_document():
    rng = np.random.default_rng(3)
    parts = [random_csr(rng, 40, 50, 6), random_csr(rng, 0, 50, 6), random_csr(rng, 25, 50, 6)]
    queries = random_csr(rng, 8, 50, 3)
    alive = rng.random(65) > 0.3
    row_doc = np.repeat(np.arange(30), [3, 1] * 15)[:65]  # documents of 3 and 1 rows (chunks), in order
    row_doc = np.concatenate([row_doc, np.arange(row_doc[-1] + 1, row_doc[-1] + 1 + 65 - len(row_doc))])
    stacked = sp.vstack(parts, format="csr")
    got = top_rows([SparseIndex(p) for p in parts], queries, 7, alive=alive, row_doc=row_doc)
    for hits, ranked in zip(got, reference_top(stacked, queries, 65, alive)):
        best: dict[int, tuple[int, float]] = {}
        for row, score in ranked:
            best.setdefault(int(row_doc[row]), (row, score))  # each document's best row, ties: first row
        assert hits == [(doc, row, score) for doc, (row, score) in list(best.items())[:7]]


def test_empty_queries_and_unknown_terms_find_nothing():
    docs = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 0, 1, 0]], dtype=np.float32))
    index = SparseIndex(docs)
    queries = sp.csr_matrix(np.array([[0, 0, 0, 0], [0, 5, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    assert index.top(queries, 3) == [[], [], []]
    assert index.top(sp.csr_matrix((0, 4), dtype=np.float32), 3) == []
    assert SparseIndex(sp.csr_matrix((0, 4), dtype=np.float32)).top(queries, 3) == [[], [], []]
    same = SparseIndex(sp.csr_matrix(np.ones((4, 2), dtype=np.float32)))  # four equal documents
    assert same.top(sp.csr_matrix(np.array([[1, 1]], dtype=np.float32)), 3) == [[(0, 2.0), (1, 2.0), (2, 2.0)]]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
def test_sparse_rows_reads_every_output_kind(splade):
    texts = ["refund refund policy", "parcel delivery"]
    expected = splade.dense(texts, query=False)
    for output in (splade.encode_document(texts), splade.encode_document(texts).to_dense(),
                   splade.encode_document(texts).to_sparse_csr(), list(splade.encode_document(texts)),
                   [row.to_dense() for row in splade.encode_document(texts)],
                   expected, sp.coo_matrix(expected), [sp.csr_matrix(row) for row in expected]):
        rows = to_csr(output, 2)
        assert rows.dtype == np.float32 and rows.shape == (2, VOCAB) and rows.has_sorted_indices
        np.testing.assert_allclose(rows.toarray(), expected, rtol=1e-6)
    one = torch.sparse_coo_tensor(torch.tensor([[3, 3, 1]]), torch.tensor([1.0, 2.0, 0.0]), (5,),
                                  check_invariants=True)  # 1-D, with a repeated term and a stored zero
    assert to_csr(one).toarray().tolist() == [[0, 0, 0, 3, 0]] and to_csr(one).nnz == 1  # summed; zero dropped
    assert sparse_rows(splade, texts, query=True).toarray().max() == 2.0  # queries: raw term frequency
    with pytest.raises(ValueError, match="2 rows for 3 texts"):
        to_csr(expected, 3)
    with pytest.raises(ValueError, match="NaN"):
        to_csr(np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError, match="encode_query"):
        sparse_rows(object(), ["x"], query=True)


def test_docstring_examples_run():
    result = doctest.testmod(sparse_side, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
    result = doctest.testmod(hybrid, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- the sparse side in the index ------------------------------------------------------------------------
def test_sparse_search_equals_brute_force_and_round_trips(model, splade, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model, splade)
    entry = sparse_entry(path)
    assert entry["vocab"] == VOCAB and entry["model"]["fingerprint"] == splade.fingerprint()
    log = json.loads((path / "manifest.json").read_text())["log"]
    assert [(p["segment"], p["rows"]) for p in entry["parts"]] == [(s["name"], s["rows"]) for s in log]
    assert set(entry["checks"]) == set(entry["files"]) and len(entry["files"]) == 6

    for query in ("refund within five days", "password login page", "closed holidays", "zebra"):
        hits = index.search(query, top_k=10, retrieval="sparse")
        expected = brute_force(splade, DOCS, query)
        assert [(h["id"], h["score"]) for h in hits] == [(i, pytest.approx(s)) for i, s in expected]
        assert all(h["found_by"] == {"sparse": {"rank": r, "score": h["score"]}} for r, h in enumerate(hits, 1))
    assert index.search("the and of", retrieval="sparse") == []  # no active term: nothing
    batch = index.search(["refund days", "ship parcels"], top_k=2, retrieval="sparse")
    assert [ids(hits) for hits in batch] == [["returns", "refund"], ["shipping"]]  # "refunds" is another word

    reopened = EmbeddingIndex.open(path, model, sparse_model=HashingSparseEncoder())
    assert reopened.search("refund within five days", retrieval="sparse") == index.search(
        "refund within five days", retrieval="sparse")
    for name in entry["files"]:  # no pickle: every file is an .npy array loadable without it
        assert name.endswith(".npy") and np.load(path / "segments" / name, allow_pickle=False).ndim == 1
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}


def test_add_delete_and_compact_keep_the_parts_aligned(model, splade, tmp_path):
    path = tmp_path / "idx"
    index = build(path, model, splade)
    assert splade.encoded["document"] == 1 + 5  # the vocabulary probe, then each document once
    index.add(["v6 Refund requests need the order number"], ids=["refund-form"])
    assert splade.encoded["document"] == 7  # adds encode only the new documents
    live = {**DOCS, "refund-form": "v6 Refund requests need the order number"}
    assert ids(index.search("refund", retrieval="sparse")) == [i for i, _ in brute_force(splade, live, "refund")]

    index.delete(["refund", "returns"])
    for gone in ("refund", "returns"):
        live.pop(gone)
    assert len(sparse_entry(path)["parts"]) == 3  # deletes leave the parts; deleted rows are masked
    assert ids(index.search("refund", retrieval="sparse")) == ["refund-form"]
    index.delete("refund-form")
    index.add(["v7 Refunds now take two days"], ids=["refund-form"])  # replace = delete, then add
    live["refund-form"] = "v7 Refunds now take two days"
    queries = ["refund days", "password reset", "parcel tracked delivery", "sundays"]
    before = [index.search(q, retrieval="sparse") for q in queries]
    assert [(h["id"], h["text"]) for h in before[0]] == [("refund-form", "v7 Refunds now take two days")]

    encoded = splade.encoded["document"]
    index.compact()
    assert splade.encoded["document"] == encoded  # compaction carries the stored rows, it encodes nothing
    entry = sparse_entry(path)
    assert len(entry["parts"]) == 1 and entry["parts"][0]["rows"] == len(live) == len(index)
    assert [index.search(q, retrieval="sparse") for q in queries] == before
    for q in queries:
        assert ids(index.search(q, retrieval="sparse")) == [i for i, _ in brute_force(splade, live, q)]
    names = {p.name for p in (path / "segments").iterdir() if p.name.startswith("spr-")}
    assert names == set(entry["files"])  # the parts of compacted segments are removed with them
    assert EmbeddingIndex.verify(path)["ok"]
    index.delete(list(live))
    index.compact()  # nothing live: no segments, no parts
    assert sparse_entry(path)["parts"] == [] and index.search("refund", retrieval="sparse") == []


def test_chunked_documents_report_the_chunk_the_sparse_side_found(tiny_model, splade, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model, sparse_model=splade)
    text = " ".join(["the weather in paris is mild today"] * 12 + ["your refund code is zebra42"])
    index.add([text, "shipping takes five days"], ids=["manual", "ship"], chunk=True, chunk_size=16, chunk_overlap=0)
    rows = index.manifest["log"][0]["rows"]
    assert rows > 2 and sparse_entry(index.path)["parts"][0]["rows"] == rows  # one sparse row per chunk
    hit = index.search("zebra42", top_k=5, retrieval="sparse")
    assert ids(hit) == ["manual"] and hit[0]["chunk"]["index"] > 0 and "zebra42" in hit[0]["chunk"]["text"]
    assert ids(index.search("weather paris", top_k=5, retrieval="sparse")) == ["manual"]  # once, not per chunk


def test_enable_sparse_on_an_existing_index(model, splade, tmp_path):
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, model)
    index.add(list(DOCS.values())[:3], ids=list(DOCS)[:3])
    index.add(list(DOCS.values())[3:], ids=list(DOCS)[3:])
    index.delete("hours")
    with pytest.raises(ValueError, match="keeps no sparse side.*enable_sparse"):
        index.search("refund", retrieval="sparse")
    assert ids(index.search("v4 refund", top_k=5, retrieval="hybrid")) != []  # no sparse side: dense + lexical
    index.enable_sparse(splade)
    live = {k: v for k, v in DOCS.items() if k != "hours"}
    for query in ("refund days", "closed sundays"):
        assert ids(index.search(query, retrieval="sparse")) == [i for i, _ in brute_force(splade, live, query)]
    other = build(tmp_path / "built-with-it", model, HashingSparseEncoder())
    other.delete("hours")
    assert index.search("refund days", retrieval="sparse") == other.search("refund days", retrieval="sparse")
    index.enable_sparse(splade)  # already kept: nothing to do
    with pytest.raises(IndexMismatchError, match="sparse model fingerprint"):
        index.enable_sparse(HashingSparseEncoder(salt="other"))


# -- refusing mixed models ----------------------------------------------------------------------------
def test_another_sparse_model_is_refused_naming_both_fingerprints(model, splade, tmp_path):
    path = tmp_path / "idx"
    build(path, model, splade)
    other = HashingSparseEncoder(salt="retrained")
    with pytest.raises(IndexMismatchError) as err:
        EmbeddingIndex.open(path, model, sparse_model=other)
    message = str(err.value)
    assert splade.fingerprint() in message and other.fingerprint() in message
    assert "hashing-bow-4096-retrained" in message and "sparse model fingerprint" in message
    with pytest.raises(IndexMismatchError, match="sparse model fingerprint"):
        EmbeddingIndex.repair(path, sparse_model=other)
    with pytest.raises(TypeError, match="sparse encoder"):
        EmbeddingIndex.open(path, model, sparse_model=object())
    with pytest.raises(ValueError, match="dense vector"):  # a dense bi-encoder passed as the sparse model
        EmbeddingIndex.create(tmp_path / "dense-as-sparse", model, sparse_model=model)


def test_opened_without_the_sparse_model(model, splade, tmp_path):
    path = tmp_path / "idx"
    build(path, model, splade)
    index = EmbeddingIndex.open(path, model)  # dense search, delete and compact need no sparse model
    assert ids(index.search("v1", top_k=1)) == ["refund"]
    for call in (lambda: index.add(["v9 new"], ids=["new"]), lambda: index.search("refund", retrieval="sparse"),
                 lambda: index.search("refund", retrieval="hybrid")):
        with pytest.raises(IndexReadOnlyError, match=f"model 'hashing-bow-4096', fingerprint {splade.fingerprint()}"):
            call()
    assert "new" not in index
    index.delete("password")
    index.compact()
    hits = EmbeddingIndex.open(path, model, sparse_model=splade).search("password reset refund", retrieval="sparse")
    assert ids(hits) == ["returns"] and EmbeddingIndex.verify(path)["ok"]


# -- hybrid fusion ------------------------------------------------------------------------------------
def test_hybrid_fuses_dense_and_sparse_and_lexical_when_kept(model, splade, tmp_path):
    index = build(tmp_path / "idx", model, splade)
    query = "v4 reset password"  # dense: row 4 ("hours") first; sparse: "password"
    dense = index.search(query, top_k=5)
    sparse = index.search(query, top_k=5, retrieval="sparse")
    assert dense[0]["id"] == "hours" and ids(sparse) == ["password"]
    hits = index.search(query, top_k=5, retrieval="hybrid")
    expected = reciprocal_rank_fusion([ids(dense), ids(sparse)])
    assert [(h["id"], h["score"]) for h in hits] == [(k, pytest.approx(s)) for k, s in expected]
    assert hits[0]["id"] == "password" and set(hits[0]["found_by"]) == {"dense", "sparse"}
    assert hits[0]["found_by"]["sparse"] == {"rank": 1, "score": pytest.approx(sparse[0]["score"])}

    weighted = index.search(query, top_k=5, retrieval="hybrid", fusion="weighted", fusion_weights=(0.3, 0.7))
    expected = weighted_score_fusion([{h["id"]: h["score"] for h in dense}, {h["id"]: h["score"] for h in sparse}],
                                     weights=[0.3, 0.7])
    assert [(h["id"], h["score"]) for h in weighted] == [(k, pytest.approx(s)) for k, s in expected]
    with pytest.raises(ValueError, match=r"3 weights for the 2 sides this index fuses \(dense, sparse\)"):
        index.search(query, retrieval="hybrid", fusion_weights=(1, 1, 1))

    with_lexical = build(tmp_path / "three", model, HashingSparseEncoder(), lexical=True)
    lexical = with_lexical.search(query, top_k=5, retrieval="lexical")
    three = with_lexical.search(query, top_k=5, retrieval="hybrid", fusion_weights=(1, 2, 0.5))
    expected = reciprocal_rank_fusion([ids(dense), ids(sparse), ids(lexical)], weights=[1, 2, 0.5])
    assert [(h["id"], h["score"]) for h in three] == [(k, pytest.approx(s)) for k, s in expected]
    assert set(three[0]["found_by"]) == {"dense", "sparse", "lexical"}
    # a dict of weights picks the sides
    picked = with_lexical.search(query, top_k=5, retrieval="hybrid", fusion_weights={"dense": 1, "lexical": 1})
    assert [(h["id"], h["score"]) for h in picked] == [
        (k, pytest.approx(s)) for k, s in reciprocal_rank_fusion([ids(dense), ids(lexical)])]
    assert all(set(h["found_by"]) <= {"dense", "lexical"} for h in picked)


# -- crashes and damage --------------------------------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying between writing its files and committing the manifest."""


def test_crash_between_writing_the_parts_and_committing_leaves_the_committed_state(model, splade, tmp_path,
                                                                                   monkeypatch):
    path = tmp_path / "idx"
    index = build(path, model, splade)
    before = index.search("refund days", retrieval="sparse")
    committed = set((path / "segments").iterdir())

    def die():
        raise Crash

    monkeypatch.setattr(index_module, "pause_before_commit", die)
    for write in (lambda: index.add(["v8 refund desk opens at nine"], ids=["desk"]), index.compact):
        with pytest.raises(Crash):
            write()
        orphans = {p.name for p in set((path / "segments").iterdir()) - committed}
        assert any(n.startswith("spr-") and n.endswith(".spdata.npy") for n in orphans)  # written in full
    monkeypatch.undo()
    # a half-written part too (a temporary file cut short, and a renamed one)
    (path / "segments" / ".spr-000099-deadbeef.spdata.npy.tmp-x").write_bytes(b"\x93NUMPY")
    (path / "segments" / "spr-000099-deadbeef.spindptr.npy").write_bytes(b"\x93NUMPY\x01\x00")

    reopened = EmbeddingIndex.open(path, model, sparse_model=splade)
    assert "desk" not in reopened and reopened.search("refund days", retrieval="sparse") == before
    assert EmbeddingIndex.verify(path)["ok"] and len(sparse_entry(path)["parts"]) == 2
    reopened.add(["v9 Refunds for gift cards"], ids=["gift"])  # the next writer removes the orphans
    names = {p.name for p in (path / "segments").iterdir()}
    manifest = json.loads((path / "manifest.json").read_text())
    assert names == set().union(*(set(e["files"]) for e in [*manifest["log"], manifest["sparse"]]))
    assert "gift" in ids(reopened.search("refund gift", retrieval="sparse"))


@pytest.mark.parametrize("how", ["truncate", "empty"])
@pytest.mark.parametrize("role", ["data", "indices", "indptr"])
def test_damaged_sparse_file_is_named_and_repaired(model, splade, tmp_path, role, how):
    path = tmp_path / "idx"
    index = build(path, model, splade)
    before = index.search("refund days", retrieval="sparse")
    name = sparse_entry(path)["parts"][1]["roles"][role]
    damage(path / "segments" / name, how)
    reopened = EmbeddingIndex.open(path, model, sparse_model=splade)
    assert ids(reopened.search("v1", top_k=1)) == ["refund"]  # the vectors are intact: dense search works
    with pytest.raises(IndexFormatError, match="damaged") as err:
        reopened.search("refund days", retrieval="sparse")
    assert name in str(err.value) and "sentencekit index repair" in str(err.value)
    assert [(p["file"], p["kind"]) for p in EmbeddingIndex.verify(path)["problems"]] == [(name, "sparse")]

    report = EmbeddingIndex.repair(path, sparse_model=splade)  # re-encodes that part from the stored texts
    assert report["sparse"] == "rebuilt" and report["lost_ids"] == [] and f"damaged/{name}" in report["moved"]
    assert EmbeddingIndex.verify(path) == {"ok": True, "problems": [], "unchecked": []}
    assert EmbeddingIndex.open(path, model, sparse_model=splade).search("refund days", retrieval="sparse") == before


def test_repair_without_the_sparse_model_drops_the_side_and_keeps_documents(model, splade, tmp_path):
    path = tmp_path / "idx"
    build(path, model, splade)
    damage(path / "segments" / sparse_entry(path)["parts"][0]["roles"]["data"], "flip")  # same size: checksums
    assert [p["kind"] for p in EmbeddingIndex.verify(path)["problems"]] == ["sparse"]
    report = EmbeddingIndex.repair(path)
    assert report["sparse"] == "dropped" and report["lost_ids"] == [] and EmbeddingIndex.verify(path)["ok"]
    index = EmbeddingIndex.open(path, model, sparse_model=splade)
    assert len(index) == 5 and "sparse" not in index.manifest
    index.enable_sparse()  # rebuilt from the stored texts
    assert ids(index.search("refund days", retrieval="sparse")) == [i for i, _ in brute_force(splade, DOCS,
                                                                                               "refund days")]


def test_repair_that_drops_or_reembeds_a_segment_keeps_the_parts_aligned(model, splade, tmp_path):
    path = tmp_path / "idx"
    build(path, model, splade)
    segment = json.loads((path / "manifest.json").read_text())["log"][0]
    damage(path / "segments" / segment["roles"]["vectors"], "truncate")
    encoded = splade.encoded["document"]
    report = EmbeddingIndex.repair(path, model)  # re-embeds the dense vectors; the intact part follows
    assert report["reembedded"] == ["refund", "shipping", "password"] and report["sparse"] == "realigned"
    assert splade.encoded["document"] == encoded and EmbeddingIndex.verify(path)["ok"]
    index = EmbeddingIndex.open(path, model, sparse_model=splade)
    assert ids(index.search("refund days", retrieval="sparse")) == ["returns", "refund"]

    segment = json.loads((path / "manifest.json").read_text())["log"][0]  # the re-embedded one, in its place
    damage(path / "segments" / segment["roles"]["docs"], "empty")
    report = EmbeddingIndex.repair(path)  # its texts are gone: dropped, with its part
    assert report["lost_unknown"] == 3 and report["sparse"] == "realigned" and EmbeddingIndex.verify(path)["ok"]
    assert len(sparse_entry(path)["parts"]) == 1
    assert ids(EmbeddingIndex.open(path, model, sparse_model=splade).search("refund days", retrieval="sparse")) == [
        "returns"]


def test_a_manifest_whose_parts_do_not_follow_the_segments_is_damaged(model, splade, tmp_path):
    path = tmp_path / "idx"
    build(path, model, splade)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["sparse"]["parts"] = manifest["sparse"]["parts"][::-1]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="manifest.json: the sparse side has parts for segments"):
        EmbeddingIndex.open(path, model, sparse_model=splade).search("refund", retrieval="sparse")
    assert "sparse side has parts" in EmbeddingIndex.verify(path)["problems"][0]["problem"]
