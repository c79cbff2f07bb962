"""Token-window chunking of long documents, alone and inside EmbeddingIndex."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sentencekit.search.chunking import chunk_texts, default_chunk_size, token_windows
from sentencekit.search.index import EmbeddingIndex


@pytest.mark.parametrize("seed", range(5))
def test_token_windows_cover_everything_within_size(seed):
    rng = np.random.default_rng(seed)
    word_ids = np.repeat(np.arange(200), rng.integers(1, 4, 200)).tolist()  # words of 1-3 tokens
    size, overlap = int(rng.integers(8, 40)), int(rng.integers(0, 6))
    windows = token_windows(word_ids, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == len(word_ids)
    for (a, b), (c, _) in zip(windows, windows[1:]):
        assert a < c <= b  # progress, no gap
        assert b - c >= min(overlap, b - a - 1) or c == b - overlap  # at least the overlap (edges snap back)
    assert all(0 < b - a <= size for a, b in windows)
    inner_edges = [b for _, b in windows[:-1]] + [a for a, _ in windows[1:]]
    split = [e for e in inner_edges if word_ids[e] == word_ids[e - 1]]
    assert len(split) <= len(inner_edges) // 4  # words are rarely cut (only to keep windows half full)


def test_token_windows_validation():
    assert token_windows([0, 1], 5, 2) == [(0, 2)]
    assert token_windows([], 5, 2) == [(0, 0)]
    with pytest.raises(ValueError, match="chunk_overlap"):
        token_windows([0, 1, 2], 2, 2)


def test_chunks_are_exact_substrings_and_reach_the_end(tiny_model):
    text = " ".join(f"the cat sat on the mat number {i}." for i in range(40)) + "   refund policy!  "
    chunks = chunk_texts([text, "short one", ""], tiny_model.tokenizer, chunk_size=20, chunk_overlap=4)
    long, short, empty = chunks
    assert len(long) > 5 and [c.index for c in long] == list(range(len(long)))
    for c in long + short:
        assert c.text == (text if c in long else "short one")[c.start : c.end] and c.text.strip() == c.text
    assert long[-1].text.endswith("refund policy!") and long[0].start == 0
    assert all(len(tiny_model.tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 20 for c in long)
    assert all(b.start < a.end for a, b in zip(long, long[1:]))  # consecutive chunks overlap
    assert short[0].text == "short one" and empty[0].text == ""
    assert default_chunk_size(tiny_model) == 48 - 2
    prompt_tokens = len(tiny_model.tokenizer("the query: ", add_special_tokens=False)["input_ids"])
    assert default_chunk_size(tiny_model, "the query: ") == 48 - 2 - prompt_tokens > 0


def test_index_chunking_returns_each_document_once(tiny_model, tmp_path):
    long_a = " ".join(f"refund order payment card number {i}" for i in range(60))
    long_b = " ".join(f"refund shipping delivery late {i}" for i in range(60))
    index = EmbeddingIndex.create(tmp_path / "idx", tiny_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no chunk is ever truncated by the model
        index.add([long_a, long_b, "the cat sat on the mat"], ids=["a", "b", "cat"], chunk=True, chunk_overlap=8)
    assert index.manifest["counts"]["vectors"] > 10 and len(index) == 3
    hits = index.search("refund", top_k=10)
    assert sorted(h["id"] for h in hits) == ["a", "b", "cat"]  # each document once, despite many chunks
    for hit in hits:
        chunk = hit["chunk"]
        assert hit["text"][chunk["start"] : chunk["end"]] == chunk["text"]
        assert chunk["index"] == index.get(hit["id"])["chunks"].index([chunk["start"], chunk["end"]])
    # the best chunk is the document's best-scoring window
    spans = index.get("a")["chunks"]
    windows = [long_a[s:e] for s, e in spans]
    scores = tiny_model.encode(windows, normalize_embeddings=True) @ tiny_model.encode(
        "refund", normalize_embeddings=True)
    hit_a = next(h for h in hits if h["id"] == "a")
    assert hit_a["chunk"]["index"] == int(np.argmax(scores))
    assert hit_a["score"] == pytest.approx(float(scores.max()), abs=1e-5)
    assert len(index.search("refund", top_k=2)) == 2
    index.delete("a")
    assert "a" not in {h["id"] for h in index.search("refund", top_k=10)}


@pytest.mark.real_model
def test_minilm_finds_a_long_documents_last_sentence(minilm, tmp_path):
    filler = ("The museum opens at nine and the guided tour through the galleries of modern painting takes about "
              "two hours, with a short break in the garden cafe. ")
    long_doc = filler * 30 + "The capital of Australia is Canberra."
    docs = [long_doc, "Our bakery sells fresh bread every morning.", "The train to the airport leaves hourly.",
            "Cats sleep most of the day.", filler * 3]
    assert len(minilm.tokenizer(long_doc)["input_ids"]) > 3 * minilm.max_seq_length
    chunked = EmbeddingIndex.create(tmp_path / "chunked", minilm)
    chunked.add(docs, chunk=True)
    hits = chunked.search("What is the capital city of Australia?", top_k=3)
    assert hits[0]["id"] == "0"
    assert "Canberra" in hits[0]["chunk"]["text"] and hits[0]["chunk"]["end"] == len(long_doc)
    assert len({h["id"] for h in hits}) == 3
    whole = EmbeddingIndex.create(tmp_path / "whole", minilm)
    with pytest.warns(UserWarning, match="truncated"):
        whole.add(docs)  # without chunking the model never reads the last sentence
    score_whole = next(h["score"] for h in whole.search("What is the capital city of Australia?", top_k=5)
                       if h["id"] == "0")
    assert hits[0]["score"] > score_whole + 0.2
