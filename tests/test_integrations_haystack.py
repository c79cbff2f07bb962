"""The Haystack components driven through haystack-ai itself: a Pipeline of InMemoryDocumentStore + our
text embedder + InMemoryEmbeddingRetriever + the fingerprint check + our ranker, run and run_async."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("haystack", reason="haystack-ai is not installed (pip install sentencekit[haystack])")

from haystack import Document, Pipeline  # noqa: E402
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever  # noqa: E402
from haystack.document_stores.in_memory import InMemoryDocumentStore  # noqa: E402

from sentencekit.integrations.haystack import (  # noqa: E402
    SentencekitDocumentEmbedder,
    SentencekitFingerprintCheck,
    SentencekitRanker,
    SentencekitTextEmbedder,
)

DOCS = ["how do i get a refund", "the cat sat on the mat", "reset my password", "weather in paris today"]
QUERY = "how do i get a refund"


@pytest.fixture()
def prompted(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "document": "passage: "})


@pytest.fixture()
def reranker(tiny_ce_dir):
    from sentencekit import CrossEncoder

    return CrossEncoder(str(tiny_ce_dir), device="cpu")


def build_pipeline(query_model, store, reranker):
    p = Pipeline()
    p.add_component("embed", SentencekitTextEmbedder(query_model))
    p.add_component("retrieve", InMemoryEmbeddingRetriever(store, top_k=3))
    p.add_component("check", SentencekitFingerprintCheck())
    p.add_component("rank", SentencekitRanker(reranker, top_k=2))
    p.connect("embed.embedding", "retrieve.query_embedding")
    p.connect("embed.fingerprint", "check.fingerprint")
    p.connect("retrieve.documents", "check.documents")
    p.connect("check.documents", "rank.documents")
    return p


def embedded_store(model):
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    docs = [Document(content=d, meta={"n": i}) for i, d in enumerate(DOCS)]
    out = SentencekitDocumentEmbedder(model).run(docs)
    store.write_documents(out["documents"])
    return store, out


def test_embedders_use_the_models_prompts_and_record_the_fingerprint(prompted):
    text = SentencekitTextEmbedder(prompted).run("refund")
    assert np.allclose(text["embedding"], prompted.encode("query: refund"), atol=1e-6)
    assert text["fingerprint"] == text["meta"]["fingerprint"]
    docs = [Document(content=d, meta={"title": "T"}) for d in DOCS]
    out = SentencekitDocumentEmbedder(prompted, meta_fields_to_embed=["title"]).run(docs)
    assert np.allclose([d.embedding for d in out["documents"]],
                       prompted.encode(["passage: T\n" + d for d in DOCS]), atol=1e-6)
    assert {d.meta["sentencekit_fingerprint"] for d in out["documents"]} == {text["fingerprint"]}
    assert docs[0].embedding is None and "sentencekit_fingerprint" not in docs[0].meta  # inputs untouched
    assert SentencekitDocumentEmbedder(prompted).run([])["documents"] == []
    with pytest.raises(TypeError, match="SentencekitDocumentEmbedder"):
        SentencekitTextEmbedder(prompted).run(docs)
    with pytest.raises(TypeError, match="SentencekitTextEmbedder"):
        SentencekitDocumentEmbedder(prompted).run("a string")


def test_pipeline_store_embedder_retriever_check_ranker(tiny_model, reranker):
    store, _ = embedded_store(tiny_model)
    result = build_pipeline(tiny_model, store, reranker).run(
        {"embed": {"text": QUERY}, "rank": {"query": QUERY}}, include_outputs_from={"retrieve"})
    retrieved = result["retrieve"]["documents"]
    assert retrieved[0].content == QUERY  # the query text is itself a document: its nearest neighbour
    ranked = result["rank"]["documents"]
    expected = reranker.rank(QUERY, [d.content for d in retrieved], top_k=2)
    assert [d.content for d in ranked] == [retrieved[e["corpus_id"]].content for e in expected]
    assert [d.score for d in ranked] == pytest.approx([e["score"] for e in expected], abs=1e-6)

    async_result = asyncio.run(build_pipeline(tiny_model, store, reranker).run_async(
        {"embed": {"text": QUERY}, "rank": {"query": QUERY}}))
    assert [(d.content, d.score) for d in async_result["rank"]["documents"]] == [(d.content, d.score) for d in ranked]


def test_a_store_embedded_by_another_model_is_refused_in_the_pipeline(tiny_model, tiny_st_dir, reranker):
    import torch

    from sentencekit import SentenceTransformer

    store, _ = embedded_store(tiny_model)
    other = SentenceTransformer(str(tiny_st_dir), device="cpu")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(Exception, match="embedded by model fingerprint") as caught:
        build_pipeline(other, store, reranker).run({"embed": {"text": QUERY}, "rank": {"query": QUERY}})
    assert "not comparable" in str(caught.value)


def test_ranker_threshold_top_k_and_errors(reranker):
    docs = [Document(content=d) for d in DOCS]
    ranker = SentencekitRanker(reranker, top_k=3)
    full = ranker.run(QUERY, docs, top_k=4)["documents"]
    assert [d.score for d in full] == sorted((d.score for d in full), reverse=True)
    cut = full[1].score
    assert [d.content for d in ranker.run(QUERY, docs, score_threshold=cut)["documents"]] == \
        [d.content for d in full[:2]]
    assert ranker.run(QUERY, [])["documents"] == []
    with pytest.raises(ValueError, match="top_k"):
        SentencekitRanker(reranker, top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        ranker.run(QUERY, docs, top_k=-1)


def test_pipeline_dumps_loads_and_runs_the_same(tiny_st_dir, tiny_bert_dir, tiny_ce_dir, tiny_model):
    """Pipelines with sentencekit components serialize (YAML) with the model's path and init arguments, load
    lazily (warm_up) and give the same embeddings and ranking; a model without a path refuses clearly."""
    from haystack.core.errors import SerializationError

    from sentencekit import SentenceTransformer
    from sentencekit.modules import Normalize, Pooling, Transformer

    def pipeline(embedder):
        p = Pipeline()
        p.add_component("embed", embedder)
        p.add_component("docs", SentencekitDocumentEmbedder(str(tiny_st_dir), meta_fields_to_embed=["n"]))
        p.add_component("rank", SentencekitRanker(str(tiny_ce_dir), top_k=2, score_threshold=-100.0))
        return p

    import inspect

    # haystack 3 loads only allowlisted modules: the user trusts ours explicitly (haystack 2 has no allowlist)
    allowlisted = "allowed_modules" in inspect.signature(Pipeline.loads).parameters
    trusted = {"allowed_modules": ["sentencekit.integrations.haystack"]} if allowlisted else {}
    docs = [Document(content=d, meta={"n": i}) for i, d in enumerate(DOCS)]
    inputs = {"embed": {"text": QUERY}, "docs": {"documents": docs}, "rank": {"query": QUERY, "documents": docs}}
    for embedder in (SentencekitTextEmbedder(str(tiny_st_dir), prefix="q: "),  # a path: loaded on warm_up
                     SentencekitTextEmbedder(tiny_model, prefix="q: ")):  # a loaded model: its path is stored
        original = pipeline(embedder)
        text = original.dumps()
        assert str(tiny_st_dir) in text and "q: " in text and "score_threshold: -100.0" in text
        loaded = Pipeline.loads(text, **trusted)
        embed = loaded.get_component("embed")
        assert embed._model is None and embed.prefix == "q: "  # lazy: nothing loaded before warm_up / run
        want, got = original.run(inputs), loaded.run(inputs)
        assert np.allclose(got["embed"]["embedding"], want["embed"]["embedding"], atol=1e-6)
        assert got["embed"]["fingerprint"] == want["embed"]["fingerprint"]
        assert [d.embedding for d in got["docs"]["documents"]] == [d.embedding for d in want["docs"]["documents"]]
        assert [(d.id, d.score) for d in got["rank"]["documents"]] == [(d.id, d.score)
                                                                      for d in want["rank"]["documents"]]
    in_memory = SentenceTransformer(modules=[Transformer(str(tiny_bert_dir)), Pooling(32, "mean"), Normalize()],
                                    device="cpu")
    p = Pipeline()
    p.add_component("embed", SentencekitTextEmbedder(in_memory))
    with pytest.raises(SerializationError, match=r"no model_name_or_path.*model\.save\(folder\)"):
        p.dumps()
