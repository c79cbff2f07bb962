"""Document titles in EmbeddingIndex: one more vector per titled document, scored "best field" (the better
of title and text), carried through chunking, BM25, rerankers, persistence, compaction and repair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentencekit.search.documents import check_titles
from sentencekit.search.index import EmbeddingIndex
from sentencekit.search.results import reranker_text

pytestmark = pytest.mark.unit

TEXTS = ["Parcels are inspected at the warehouse, then the payment method is credited.",
         "Express shipping fees are refunded automatically when an order arrives late.",
         "Our stores open at nine and close at six on weekdays."]
TITLES = ["How long until I get my money back?", None, "Opening hours"]


def titled_index(path, model, **kwargs):
    index = EmbeddingIndex.create(path, model, **kwargs)
    index.add(TEXTS, ids=["money", "late", "hours"], titles=TITLES)
    return index


def test_a_title_is_one_more_vector_and_its_match_finds_the_document(tiny_model, tmp_path):
    index = titled_index(tmp_path / "idx", tiny_model)
    assert len(index) == 3 and index.manifest["counts"]["vectors"] == 5  # 3 texts + 2 titles
    hit = index.search(TITLES[0], top_k=1)[0]  # the query is the title itself: its vector scores 1.0
    assert hit["id"] == "money" and hit["field"] == "title" and hit["title"] == TITLES[0]
    assert hit["score"] == pytest.approx(1.0, abs=1e-5) and hit["text"] == TEXTS[0] and "chunk" not in hit
    hit = index.search(TEXTS[0], top_k=1)[0]  # the text's own vector wins for the text
    assert hit["id"] == "money" and hit["field"] == "text"
    untitled = index.search(TEXTS[1], top_k=3)
    assert untitled[0]["id"] == "late" and "title" not in untitled[0] and "field" not in untitled[0]
    assert len({h["id"] for h in index.search("anything at all", top_k=10)}) == 3  # each document once


def test_scores_are_the_better_of_title_and_text(tiny_model, tmp_path):
    index = titled_index(tmp_path / "idx", tiny_model)
    query = "when do I see the credit on my card"
    q = tiny_model.encode([query], normalize_embeddings=True)[0]
    rows = tiny_model.encode([TITLES[0], TEXTS[0]], normalize_embeddings=True)
    expected = float(np.max(rows @ q))
    hit = next(h for h in index.search(query, top_k=3) if h["id"] == "money")
    assert hit["score"] == pytest.approx(expected, abs=1e-5)


def test_chunked_titled_documents_report_the_right_chunk(tiny_model, tmp_path):
    long_text = " ".join(f"sentence number {i} about parcels and payments." for i in range(60))
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    index.add([long_text, "short text"], ids=["long", "short"], titles=["A manual", "Short"], chunk=True)
    spans = index.get("long")["chunks"]
    assert len(spans) > 3
    third = long_text[spans[2][0]:spans[2][1]]
    hit = index.search(third, top_k=1)[0]
    assert hit["id"] == "long" and hit["field"] == "text"
    assert hit["chunk"]["index"] == 2 and hit["chunk"]["text"] == third  # not shifted by the title's row
    hit = index.search("A manual", top_k=1)[0]
    assert hit["id"] == "long" and hit["field"] == "title" and "chunk" not in hit


def test_bm25_reads_the_title_and_the_reranker_gets_it_first(tiny_model, tmp_path):
    pytest.importorskip("bm25s")
    index = titled_index(tmp_path / "idx", tiny_model, lexical=True)
    hits = index.search("opening hours", retrieval="lexical", top_k=3)
    assert hits and hits[0]["id"] == "hours"  # "opening" occurs only in the title

    class Reads:
        """Scores a pair by whether the reranker saw the title: records what it was given."""

        seen: list[str] = []

        def predict(self, pairs):
            self.seen.extend(text for _, text in pairs)
            return np.array([float(text.startswith("How long")) for _, text in pairs])

    reranker = Reads()
    top = index.search("refund", top_k=1, reranker=reranker, rerank_top_n=3)[0]
    assert top["id"] == "money"
    assert f"{TITLES[0]}\n{TEXTS[0]}" in reranker.seen and TEXTS[1] in reranker.seen


def test_titles_survive_reopening_compaction_and_repair(tiny_model, tmp_path):
    index = titled_index(tmp_path / "idx", tiny_model)
    before = index.search(TITLES[2], top_k=3)
    index.delete("late")
    index.compact()
    reopened = EmbeddingIndex.open(tmp_path / "idx", tiny_model)
    after = reopened.search(TITLES[2], top_k=3)
    assert [h["id"] for h in after] == [h["id"] for h in before if h["id"] != "late"]
    assert after[0]["field"] == "title" and reopened.manifest["counts"]["vectors"] == 4
    assert EmbeddingIndex.verify(tmp_path / "idx")["ok"]
    # re-embedding from the stored texts (repair with a model) gives the same vectors back
    vectors = sorted((tmp_path / "idx" / "segments").glob("*.f32.npy"))
    assert len(vectors) == 1
    data = bytearray(vectors[0].read_bytes())
    data[-4:] = b"\xff\xff\xff\x7f"  # flip the last weight: same size, wrong checksum
    vectors[0].write_bytes(bytes(data))
    report = EmbeddingIndex.repair(tmp_path / "idx", tiny_model)
    assert sorted(report["reembedded"]) == ["hours", "money"] and report["lost_ids"] == []
    repaired = EmbeddingIndex.open(tmp_path / "idx", tiny_model).search(TITLES[2], top_k=3)
    assert [(h["id"], h.get("field")) for h in repaired] == [(h["id"], h.get("field")) for h in after]
    assert [h["score"] for h in repaired] == pytest.approx([h["score"] for h in after], abs=1e-5)


def test_check_titles():
    assert check_titles(None, 2) == [None, None]
    assert check_titles(["a", "", " ", None], 4) == ["a", None, None, None]
    with pytest.raises(ValueError, match="2 titles for 3 texts"):
        check_titles(["a", "b"], 3)
    with pytest.raises(TypeError, match="titles\\[1\\] is int"):
        check_titles(["a", 3], 2)
    with pytest.raises(TypeError, match="not a single string"):
        check_titles("one title", 9)
    assert reranker_text({"text": "t"}) == "t" and reranker_text({"title": "T", "text": "t"}) == "T\nt"
    chunk = {"title": "T", "text": "long", "chunk": {"text": "lo"}}
    assert reranker_text(chunk) == "T\nlo"


def test_corpus_titles_are_indexed_by_the_cli_path(tiny_model, tmp_path):
    from sentencekit.search.corpus_index import build_index

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": i, "title": t, "text": x}) for i, t, x in
                                [("a", "Returns", "Send it back within 60 days."), ("b", "", "No title here.")]))
    index, added = build_index(corpus, tmp_path / "idx", tiny_model, lexical=False)
    assert added == 2 and index.manifest["counts"]["vectors"] == 3
    hit = index.search("Returns", top_k=1)[0]
    assert hit["id"] == "a" and hit["field"] == "title" and hit["metadata"] == {"title": "Returns"}
