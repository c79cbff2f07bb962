"""EmbeddingIndex: storing, searching, refusing mismatched models, rerankers, quantized/HNSW paths and
crash/concurrency safety. Scores are checked against brute-force NumPy over the model's own vectors."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from sentencekit import SentenceTransformer
from sentencekit.search import index as index_module
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.index_errors import IndexFormatError, IndexLockTimeout, IndexMismatchError, IndexReadOnlyError
from sentencekit.search.storage import PAUSE_ENV, writer_lock

TEXTS = [
    "how do i get a refund for my order", "what is the return policy", "reset my account password",
    "cancel my subscription please", "the cat sat on the mat", "shipping is late for my delivery",
    "payment card was declined", "hello world test sentence", "the weather in paris is mild today",
    "contact support by email or phone", "my item arrived broken", "login help for my account",
]
needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss-cpu is not installed")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """Same architecture as tiny_model, different random weights."""
    from sentencekit.modules import Normalize, Pooling, Transformer
    from tests.conftest import build_tiny_bert

    bert = build_tiny_bert(tmp_path_factory.mktemp("other-bert"), seed=1)
    model = SentenceTransformer(modules=[Transformer(str(bert), max_seq_length=48), Pooling(32, "mean"), Normalize()],
                                device="cpu")
    out = tmp_path_factory.mktemp("other-st") / "model"
    model.save(out)
    return out


class LookupModel(torch.nn.Module):
    """A stand-in bi-encoder for recall tests: the text ``"v<i>"`` embeds to row ``i`` of a fixed matrix."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))
        self.prompts, self.truncate_dim, self.similarity_fn_name = {"query": "", "document": ""}, None, "cosine"
        self.model_name_or_path = "lookup"

    def __iter__(self):
        return iter([])

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.table.shape[1])

    def encode(self, texts, prompt=None, normalize_embeddings=False, truncate_dim=None, **kwargs):
        rows = self.table.numpy()[[int(t[1:]) if t.startswith("v") else 0 for t in texts]][:, :truncate_dim]
        return unit(rows) if normalize_embeddings else rows

    encode_query = encode_document = encode


def topics(n_topics: int, per_topic: int, dim: int, spread: float, n_queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_topics, dim))
    corpus = np.repeat(centers, per_topic, 0) + spread * rng.standard_normal((n_topics * per_topic, dim))
    queries = centers[rng.integers(0, n_topics, n_queries)] + spread * rng.standard_normal((n_queries, dim))
    return unit(corpus).astype(np.float32), unit(queries).astype(np.float32)


# -- basic use ----------------------------------------------------------------------------------
def test_search_matches_brute_force(tiny_model, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    assert index.add(TEXTS[:7]) == [str(i) for i in range(7)]
    index.add(TEXTS[7:])  # a second segment
    queries = ["refund for my order", "password reset"]
    docs = unit(tiny_model.encode_document(TEXTS).astype(np.float64))
    q = unit(tiny_model.encode_query(queries).astype(np.float64))
    scores = q @ docs.T
    results = index.search(queries, top_k=5)
    for row, expected in zip(results, scores):
        order = np.argsort(-expected)[:5]
        assert [h["id"] for h in row] == [str(i) for i in order]
        np.testing.assert_allclose([h["score"] for h in row], expected[order], atol=1e-5)
        assert [h["text"] for h in row] == [TEXTS[i] for i in order]
    single = index.search("refund for my order", top_k=3)
    assert [h["id"] for h in single] == [h["id"] for h in results[0][:3]]
    assert len(index.search("refund", top_k=100)) == len(TEXTS)


def test_ids_metadata_delete_and_reopen(tiny_model, tmp_path):
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, tiny_model)
    index.add(TEXTS[:3], ids=["refund", "returns", "password"],
              metadata=[{"lang": "en", "tags": ["billing"]}, None, {"n": 1}])
    assert index.add(TEXTS[3:5]) == ["0", "1"]
    assert index.get("refund") == {"id": "refund", "text": TEXTS[0], "metadata": {"lang": "en", "tags": ["billing"]}}
    assert index.get("nope") is None and "returns" in index and len(index) == 5
    assert index.delete(["returns", "0"]) == 2
    with pytest.raises(KeyError, match="returns"):
        index.delete("returns")
    assert index.delete(["returns"], missing_ok=True) == 0

    reopened = EmbeddingIndex.open(path, tiny_model)
    assert reopened.ids() == ["refund", "password", "1"]
    assert reopened.get("password")["metadata"] == {"n": 1}
    hits = reopened.search(TEXTS[1], top_k=10)
    assert {h["id"] for h in hits} == {"refund", "password", "1"}
    assert reopened.add([TEXTS[5]]) == ["2"]  # the running counter survives reopening
    assert reopened.add([TEXTS[1]], ids=["returns"]) == ["returns"]  # a deleted id can be reused
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == 5 and manifest["model"]["fingerprint"]
    assert manifest["dimension"] == 32 and manifest["normalize"] is True
    assert manifest["similarity_fn_name"] == "cosine" and manifest["precision"] == "float32"
    reopened.compact()
    assert reopened.ids() == ["refund", "password", "1", "2", "returns"]
    assert reopened.manifest["counts"] == {"documents": 5, "vectors": 5, "segments": 1, "deleted_vectors": 0,
                                                  "titles": 0}


def test_bad_ids_and_metadata_commit_nothing(tiny_model, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    index.add(TEXTS[:2], ids=["a", "b"])
    with pytest.raises(ValueError, match=r"already in the index"):
        index.add(TEXTS[2:4], ids=["c", "a"])
    with pytest.raises(ValueError, match="Duplicate ids"):
        index.add(TEXTS[2:4], ids=["c", "c"])
    with pytest.raises(TypeError, match="strings"):
        index.add(TEXTS[2:3], ids=[3])
    with pytest.raises(ValueError, match="one id per text"):
        index.add(TEXTS[2:4], ids=["c"])
    with pytest.raises(TypeError, match="JSON"):
        index.add(TEXTS[2:3], metadata=[{"x": object()}])
    assert index.ids() == ["a", "b"]


# -- refusing mismatches ------------------------------------------------------------------------
def test_refuses_other_model_dimension_and_normalization(tiny_model, tiny_st_dir, other_model_dir, tmp_path):
    path = tmp_path / "idx"
    EmbeddingIndex.create(path, tiny_model).add(TEXTS[:3])
    other = SentenceTransformer(str(other_model_dir), device="cpu")
    with pytest.raises(IndexMismatchError) as err:
        EmbeddingIndex.open(path, other)
    message = str(err.value)
    assert "model fingerprint: recorded" in message and "given" in message
    assert "EmbeddingIndex.create" in message and "open it with the model(s) it was built with" in message
    with pytest.raises(IndexMismatchError, match="normalize: recorded True, given False"):
        EmbeddingIndex.open(path, tiny_model, normalize=False)
    with pytest.raises(IndexMismatchError, match="dimension: recorded 32, given 16"):
        EmbeddingIndex.open(path, tiny_model, truncate_dim=16)
    truncated = SentenceTransformer(str(tiny_st_dir), device="cpu", truncate_dim=16)
    with pytest.raises(IndexMismatchError, match="truncate_dim=16"):
        EmbeddingIndex.open(path, truncated)
    assert len(EmbeddingIndex.open(path, tiny_model, normalize=True, truncate_dim=32)) == 3


def test_truncate_dim_and_prompts_are_recorded_and_reapplied(tiny_st_dir, tmp_path):
    prompted = SentenceTransformer(str(tiny_st_dir), device="cpu",
                                   prompts={"query": "query: ", "document": "passage: "})
    path = tmp_path / "idx"
    EmbeddingIndex.create(path, prompted, truncate_dim=16).add(TEXTS)
    manifest = json.loads((path / "manifest.json").read_text())
    assert (manifest["dimension"], manifest["truncate_dim"]) == (16, 16)
    assert (manifest["document_prompt"], manifest["query_prompt"]) == ("passage: ", "query: ")
    # the same weights loaded without prompts or truncation still search with the recorded settings
    plain = SentenceTransformer(str(tiny_st_dir), device="cpu")
    hits = EmbeddingIndex.open(path, plain).search("refund for my order", top_k=4)
    docs = unit(plain.encode(["passage: " + t for t in TEXTS])[:, :16].astype(np.float64))
    q = unit(plain.encode(["query: refund for my order"])[:, :16].astype(np.float64))
    expected = (q @ docs.T)[0]
    assert [h["id"] for h in hits] == [str(i) for i in np.argsort(-expected)[:4]]
    np.testing.assert_allclose([h["score"] for h in hits], np.sort(expected)[::-1][:4], atol=1e-5)


def test_cross_encoder_refused_and_read_only(tiny_model, tmp_path):
    class CrossEncoder:
        def predict(self, pairs):
            return np.zeros(len(pairs))

    with pytest.raises(TypeError, match="cross-encoder"):
        EmbeddingIndex.create(tmp_path / "ce", CrossEncoder())
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    index.add(TEXTS[:3])
    with pytest.raises(TypeError, match="reranker must be a cross-encoder"):
        index.search("refund", reranker=tiny_model)
    inspect = EmbeddingIndex.open(tmp_path / "idx")
    assert len(inspect) == 3 and inspect.get("1")["text"] == TEXTS[1] and inspect.model is None
    with pytest.raises(IndexReadOnlyError, match="without a model"):
        inspect.search("refund")
    with pytest.raises(IndexReadOnlyError):
        inspect.add(["x"])
    with pytest.raises(FileExistsError):
        EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    with pytest.raises(IndexFormatError, match="No embedding index"):
        EmbeddingIndex.open(tmp_path / "nothing-here", tiny_model)


def test_reranker_rescores_first_stage_candidates(tiny_model, tmp_path):
    class KeywordReranker:
        calls: list = []

        def predict(self, pairs):
            self.calls.append(list(pairs))
            return np.array([float(text.count("my")) + 0.01 * len(text) for _, text in pairs], dtype=np.float32)

    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    index.add(TEXTS)
    reranker = KeywordReranker()
    results = index.search(["refund", "password"], top_k=3, reranker=reranker, rerank_top_n=6)
    assert len(reranker.calls) == 1 and len(reranker.calls[0]) == 12  # one call, 6 candidates per query
    first_stage = index.search(["refund", "password"], top_k=6)
    for q, (hits, candidates) in enumerate(zip(results, first_stage)):
        pairs = reranker.calls[0][6 * q : 6 * q + 6]
        assert [t for _, t in pairs] == [h["text"] for h in candidates]
        expected = sorted(candidates, key=lambda h: -(h["text"].count("my") + 0.01 * len(h["text"])))[:3]
        assert [h["id"] for h in hits] == [h["id"] for h in expected]
        by_id = {h["id"]: h["score"] for h in candidates}
        assert all(h["retrieval_score"] == pytest.approx(by_id[h["id"]]) for h in hits)


# -- quantized and HNSW paths -------------------------------------------------------------------
@pytest.mark.parametrize("precision, backend", [
    ("float32", "exact"), ("int8", "exact"), ("ubinary", "exact"),
    pytest.param("float32", "hnsw", marks=needs_faiss), pytest.param("int8", "hnsw", marks=needs_faiss),
    pytest.param("ubinary", "hnsw", marks=needs_faiss),
])
def test_quantized_and_hnsw_recall(precision, backend, tmp_path):
    corpus, queries = topics(300, 10, 128, 0.8, 50)
    model = LookupModel(np.concatenate([corpus, queries]))
    index = EmbeddingIndex.create(tmp_path / "idx", model, precision=precision, backend=backend)
    for start in range(0, len(corpus), 1000):  # three segments
        index.add([f"v{i}" for i in range(start, min(start + 1000, len(corpus)))],
                  ids=[str(i) for i in range(start, min(start + 1000, len(corpus)))])
    names = [f"v{len(corpus) + i}" for i in range(len(queries))]
    results = index.search(names, top_k=10)
    assert [h["id"] for h in index.search(names[0], top_k=10)] == [h["id"] for h in results[0]]  # 1 vs many queries
    truth = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
    recall = np.mean([len({int(h["id"]) for h in r} & set(t.tolist())) / 10 for r, t in zip(results, truth)])
    assert recall >= (0.99 if (precision, backend) == ("float32", "exact") else 0.9)
    for q, hits in zip(queries, results):  # scores are exact cosines, best first
        exact = corpus[[int(h["id"]) for h in hits]] @ q
        np.testing.assert_allclose([h["score"] for h in hits], exact, atol=1e-5)
        assert all(a >= b for a, b in zip([h["score"] for h in hits], [h["score"] for h in hits][1:]))


@needs_faiss
def test_auto_backend_caches_hnsw_and_invalidates_it(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "AUTO_HNSW_MIN_VECTORS", 100)
    corpus, _ = topics(20, 10, 32, 0.5, 1)
    model = LookupModel(corpus)
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, model, backend="auto")
    index.add([f"v{i}" for i in range(50)])
    index.search("v0")
    assert not (path / "ann").exists()  # below the threshold: exact
    index.add([f"v{i}" for i in range(50, 200)])
    assert index.search("v3", top_k=1)[0]["id"] == "3"
    first = sorted(p.name for p in (path / "ann").iterdir())
    assert len(first) == 1 and first[0].startswith("hnsw-")
    index.delete(["3"])
    assert index.search("v3", top_k=1)[0]["id"] != "3"  # rebuilt without the deleted vector
    second = sorted(p.name for p in (path / "ann").iterdir())
    assert len(second) == 1 and second != first
    reopened = EmbeddingIndex.open(path, model)  # loads the cached graph
    assert reopened.search("v5", top_k=1)[0]["id"] == "5"


# -- crash safety and concurrency ---------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from sentencekit import SentenceTransformer
    from sentencekit.search.index import EmbeddingIndex

    model_dir, path, prefix, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    index = EmbeddingIndex.open(path, SentenceTransformer(model_dir, device="cpu"))
    for r in range(rounds):
        index.add([f"{prefix} document {r} {i}" for i in range(4)], ids=[f"{prefix}-{r}-{i}" for i in range(4)])
""")


def run_writer(tmp_path, model_dir, path, prefix, rounds, env=None) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(model_dir), str(path), prefix, str(rounds)],
                            env={**os.environ, **(env or {})}, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_writer_killed_before_commit_leaves_committed_documents(tiny_model, tiny_st_dir, tmp_path):
    path = tmp_path / "idx"
    index = EmbeddingIndex.create(path, tiny_model)
    index.add(TEXTS[:5], ids=[f"doc{i}" for i in range(5)])
    committed = set(os.listdir(path / "segments"))
    writer = run_writer(tmp_path, tiny_st_dir, path, "killed", 1, env={PAUSE_ENV: "60"})
    deadline = time.monotonic() + 60
    while not any(n.endswith(".docs.jsonl") for n in set(os.listdir(path / "segments")) - committed):
        assert writer.poll() is None, writer.stderr.read().decode()
        assert time.monotonic() < deadline, "the writer never wrote its segment"
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)  # segment files written, manifest not yet committed
    writer.wait()

    reopened = EmbeddingIndex.open(path, tiny_model)
    assert reopened.ids() == [f"doc{i}" for i in range(5)]
    assert {h["id"] for h in reopened.search("document", top_k=10)} == {f"doc{i}" for i in range(5)}
    assert set(os.listdir(path / "segments")) - committed  # the orphan is still there ...
    reopened.add(["a new document"], ids=["new"])
    assert len(reopened) == 6
    left = set(os.listdir(path / "segments")) - committed
    assert all(name.startswith(reopened.manifest["log"][-1]["name"]) for name in left)  # ... until the next write
    writer.stderr.close()


@pytest.mark.slow
def test_two_writer_processes_and_a_reader(tiny_model, tiny_st_dir, tmp_path):
    path = tmp_path / "idx"
    EmbeddingIndex.create(path, tiny_model).add(TEXTS[:2], ids=["x", "y"])
    # each add holds the lock a little longer (test hook), so the two writers really contend for it
    writers = [run_writer(tmp_path, tiny_st_dir, path, name, 5, env={PAUSE_ENV: "0.2"}) for name in ("p", "q")]
    reader = EmbeddingIndex.open(path, tiny_model)
    seen = set()
    while any(w.poll() is None for w in writers):
        n = len(reader)
        assert (n - 2) % 4 == 0  # only whole, committed adds are ever visible
        seen.add(n)
        reader.search("document", top_k=3)
        time.sleep(0.05)
    for w in writers:
        assert w.returncode == 0, w.stderr.read().decode()
        w.stderr.close()
    expected = {"x", "y"} | {f"{p}-{r}-{i}" for p in "pq" for r in range(5) for i in range(4)}
    assert set(EmbeddingIndex.open(path, tiny_model).ids()) == expected
    assert reader.manifest["generation"] == 11 and len(reader) == 42
    assert len(seen) > 1  # the reader saw the index grow while the writers ran


def test_second_writer_times_out_with_clear_error(tiny_model, tmp_path):
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model, lock_timeout=0.2)
    with writer_lock(tmp_path / "idx", timeout=1), pytest.raises(IndexLockTimeout, match="writer lock"):
        index.add(["blocked"])
    assert index.add(["free again"]) == ["0"]


# -- real model ---------------------------------------------------------------------------------
@pytest.mark.real_model
def test_minilm_index_finds_the_relevant_document(minilm, tmp_path):
    faq = ["Refunds are paid back to your card within 5 days.", "We ship to 40 countries.",
           "Reset your password from the login page.", "Our office is closed on Sundays."]
    index = EmbeddingIndex.create(tmp_path / "idx", minilm)
    index.add(faq, ids=["refund", "shipping", "password", "hours"])
    hits = index.search(["How do I get my money back?", "I forgot my password"], top_k=2)
    assert [h[0]["id"] for h in hits] == ["refund", "password"]
    assert index.manifest["dimension"] == 384
