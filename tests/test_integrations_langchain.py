"""The LangChain adapters driven through langchain-core itself: an InMemoryVectorStore retriever over
SentencekitEmbeddings, the reranker as a document compressor, async methods, the fingerprint guard."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed (pip install sentencekit[langchain])")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from sentencekit.integrations.langchain import (  # noqa: E402
    SentencekitEmbeddings,
    SentencekitReranker,
    add_stamped_documents,
)

DOCS = ["how do i get a refund", "the cat sat on the mat", "reset my password", "weather in paris today"]


@pytest.fixture()
def prompted(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "document": "passage: "})


def test_embeddings_use_the_models_query_and_document_prompts(prompted):
    embeddings = SentencekitEmbeddings(prompted)
    docs = embeddings.embed_documents(DOCS)
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)
    assert np.allclose(docs, prompted.encode(["passage: " + d for d in DOCS]), atol=1e-6)
    query = embeddings.embed_query("refund")
    assert np.allclose(query, prompted.encode("query: refund"), atol=1e-6)
    assert not np.allclose(query, prompted.encode("passage: refund"), atol=1e-4)  # the prompts differ
    assert embeddings.embed_documents([]) == []
    with pytest.raises(TypeError, match="one string"):
        embeddings.embed_query(["a", "b"])


def test_async_methods_equal_sync_and_run_off_the_event_loop(tiny_model, monkeypatch):
    import threading

    embeddings = SentencekitEmbeddings(tiny_model)
    seen = []
    original = tiny_model.encode

    def spy(*args, **kwargs):
        seen.append(threading.current_thread() is threading.main_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_model, "encode", spy)

    async def both():
        return await embeddings.aembed_documents(DOCS), await embeddings.aembed_query("refund")

    docs, query = asyncio.run(both())
    assert seen == [False, False]  # encode ran in worker threads, never on the loop's thread
    assert np.allclose(docs, embeddings.embed_documents(DOCS), atol=1e-6)
    assert np.allclose(query, embeddings.embed_query("refund"), atol=1e-6)


def test_in_memory_vector_store_retriever_end_to_end(tiny_model):
    embeddings = SentencekitEmbeddings(tiny_model)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(embeddings.stamp([Document(page_content=d, id=str(i)) for i, d in enumerate(DOCS)]))
    retriever = store.as_retriever(search_kwargs={"k": 2}) | RunnableLambda(embeddings.check_documents)
    hits = retriever.invoke(DOCS[2])
    assert hits[0].page_content == DOCS[2]  # a document is its own nearest neighbour
    assert hits[0].metadata["sentencekit_fingerprint"] == embeddings.fingerprint
    # the store's scores are our model's cosine similarities
    scored = store.similarity_search_with_score("refund", k=len(DOCS))
    expected = tiny_model.similarity(tiny_model.encode_query(["refund"]), tiny_model.encode_document(DOCS))[0]
    assert np.allclose([s for _, s in sorted(scored, key=lambda ds: int(ds[0].id))], expected.numpy(), atol=1e-5)


def test_a_store_embedded_by_another_model_is_refused(tiny_model, tiny_st_dir, tmp_path):
    import torch

    from sentencekit import SentenceTransformer

    embeddings = SentencekitEmbeddings(tiny_model)
    store = InMemoryVectorStore(embeddings)
    store.add_documents(embeddings.stamp([Document(page_content=d) for d in DOCS]))
    store.dump(str(tmp_path / "store.json"))

    other = SentenceTransformer(str(tiny_st_dir), device="cpu")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)  # another model (same shapes)
    other_embeddings = SentencekitEmbeddings(other)
    assert other_embeddings.fingerprint != embeddings.fingerprint
    reloaded = InMemoryVectorStore.load(str(tmp_path / "store.json"), other_embeddings)
    with pytest.raises(ValueError, match="embedded by model fingerprint"):
        other_embeddings.check_vector_store(reloaded)
    with pytest.raises(ValueError, match="not comparable"):
        (reloaded.as_retriever() | RunnableLambda(other_embeddings.check_documents)).invoke("refund")
    with pytest.raises(ValueError, match="the vector store embeds with model fingerprint"):
        other_embeddings.check_vector_store(store)
    embeddings.check_vector_store(store)  # the model that built it passes


def test_reranker_compresses_to_the_cross_encoders_top_n(tiny_ce_dir):
    from sentencekit import CrossEncoder

    model = CrossEncoder(str(tiny_ce_dir), device="cpu")
    reranker = SentencekitReranker(model=model, top_n=2)
    docs = [Document(page_content=d, metadata={"n": i}) for i, d in enumerate(DOCS)]
    out = reranker.compress_documents(docs, "how do i get a refund")
    ranked = model.rank("how do i get a refund", DOCS, top_k=2)
    assert [d.metadata["n"] for d in out] == [r["corpus_id"] for r in ranked]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx([r["score"] for r in ranked], abs=1e-6)
    assert "relevance_score" not in docs[0].metadata  # inputs untouched
    assert asyncio.run(reranker.acompress_documents(docs, "how do i get a refund")) == out
    assert reranker.compress_documents([], "q") == []
    with pytest.raises(ValueError, match="top_n"):
        SentencekitReranker(model=model, top_n=0)
    from_path = SentencekitReranker(model=str(tiny_ce_dir), top_n=1)
    assert from_path.compress_documents(docs, "how do i get a refund")[0].metadata["n"] == ranked[0]["corpus_id"]


def test_stamp_comes_from_the_store_embeddings(tiny_model, tiny_st_dir):
    """add_stamped_documents stamps with the store's own embeddings (the model that embeds the documents);
    a stamp from another adapter is refused with a message that points at the wrong stamp."""
    import torch
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from sentencekit import SentenceTransformer
    from sentencekit.integrations.metadata_guard import FINGERPRINT_KEY

    minilm = SentencekitEmbeddings(tiny_model)
    other = SentenceTransformer(str(tiny_st_dir), device="cpu")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    e5 = SentencekitEmbeddings(other)
    store = InMemoryVectorStore(minilm)
    ids = add_stamped_documents(store, [Document(page_content=d) for d in DOCS], ids=["a", "b", "c", "d"])
    assert ids == ["a", "b", "c", "d"]
    assert {rec["metadata"][FINGERPRINT_KEY] for rec in store.store.values()} == {minilm.fingerprint}
    minilm.check_vector_store(store)  # the bug: stamping with another adapter made this a false refusal
    (store.as_retriever() | RunnableLambda(minilm.check_documents)).invoke("refund")

    misused = InMemoryVectorStore(minilm)
    misused.add_documents(e5.stamp([Document(page_content="x")]))  # the stamp names e5, minilm embedded it
    with pytest.raises(ValueError, match=r"the stamp is wrong.*add_stamped_documents\(store, documents\)"):
        minilm.check_vector_store(misused)
    with pytest.raises(TypeError, match="not a SentencekitEmbeddings"):
        add_stamped_documents(InMemoryVectorStore(DeterministicFakeEmbedding(size=8)), [Document(page_content="x")])
