"""The LlamaIndex adapters driven through llama-index-core itself: a VectorStoreIndex built and queried with
SentencekitEmbedding, the reranker and the fingerprint check as node post-processors, async methods."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("llama_index.core",
                    reason="llama-index-core is not installed (pip install sentencekit[llamaindex])")

from llama_index.core import Document, VectorStoreIndex  # noqa: E402
from llama_index.core.llms.mock import MockLLM  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode  # noqa: E402

from sentencekit.integrations.llamaindex import (  # noqa: E402
    SentencekitEmbedding,
    SentencekitFingerprintCheck,
    SentencekitRerank,
)

DOCS = ["how do i get a refund", "the cat sat on the mat", "reset my password", "weather in paris today"]


@pytest.fixture()
def prompted(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu", prompts={"query": "query: ", "document": "passage: "})


def test_embedding_uses_the_models_prompts_sync_and_async(prompted):
    embed = SentencekitEmbedding(prompted, embed_batch_size=2)
    assert np.allclose(embed.get_query_embedding("refund"), prompted.encode("query: refund"), atol=1e-6)
    assert np.allclose(embed.get_text_embedding("refund"), prompted.encode("passage: refund"), atol=1e-6)
    batch = embed.get_text_embedding_batch(DOCS)
    assert np.allclose(batch, prompted.encode(["passage: " + d for d in DOCS]), atol=1e-6)
    assert np.allclose(asyncio.run(embed.aget_query_embedding("refund")), embed.get_query_embedding("refund"),
                       atol=1e-6)
    assert np.allclose(asyncio.run(embed.aget_text_embedding_batch(DOCS)), batch, atol=1e-6)
    assert embed.fingerprint and embed.model is prompted


def test_vector_store_index_query_with_reranker_and_fingerprint_check(tiny_model, tiny_ce_dir):
    from sentencekit import CrossEncoder

    embed = SentencekitEmbedding(tiny_model)
    index = VectorStoreIndex.from_documents([Document(text=d, metadata={"n": i}) for i, d in enumerate(DOCS)],
                                            embed_model=embed, transformations=[embed])
    hits = index.as_retriever(similarity_top_k=2).retrieve(DOCS[2])
    assert hits[0].node.get_content() == DOCS[2]
    assert hits[0].node.metadata["sentencekit_fingerprint"] == embed.fingerprint
    assert "sentencekit_fingerprint" not in hits[0].node.get_content(metadata_mode=MetadataMode.EMBED)
    embedded_text = hits[0].node.get_content(metadata_mode=MetadataMode.EMBED)  # "n: 2\n\nreset my password"
    cosine = tiny_model.similarity(tiny_model.encode_query([DOCS[2]]), tiny_model.encode_document([embedded_text]))
    assert hits[0].score == pytest.approx(float(cosine[0, 0]), abs=1e-5)

    reranker = CrossEncoder(str(tiny_ce_dir), device="cpu")
    rerank = SentencekitRerank(reranker, top_n=2)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                   node_postprocessors=[SentencekitFingerprintCheck(fingerprint=embed.fingerprint),
                                                        rerank])
    response = engine.query("how do i get a refund")
    # the cross-encoder reads what LlamaIndex embeds: metadata ("n: 0") above the text
    candidates = index.as_retriever(similarity_top_k=4).retrieve("how do i get a refund")
    expected = reranker.rank("how do i get a refund",
                             [c.node.get_content(metadata_mode=MetadataMode.EMBED) for c in candidates], top_k=2)
    got = [(n.node.metadata["n"], n.score) for n in response.source_nodes]
    assert [n for n, _ in got] == [candidates[e["corpus_id"]].node.metadata["n"] for e in expected]
    assert [s for _, s in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_nodes_embedded_by_another_model_are_refused(tiny_model, tiny_st_dir):
    import torch

    from sentencekit import SentenceTransformer

    embed = SentencekitEmbedding(tiny_model)
    index = VectorStoreIndex.from_documents([Document(text=d) for d in DOCS], embed_model=embed,
                                            transformations=[embed])
    other = SentenceTransformer(str(tiny_st_dir), device="cpu")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    other_embed = SentencekitEmbedding(other)
    assert other_embed.fingerprint != embed.fingerprint
    retriever = index.as_retriever(similarity_top_k=2, embed_model=other_embed)
    check = SentencekitFingerprintCheck(fingerprint=other_embed.fingerprint)
    with pytest.raises(ValueError, match="embedded by model fingerprint"):
        check.postprocess_nodes(retriever.retrieve("refund"))
    ok = SentencekitFingerprintCheck(fingerprint=embed.fingerprint).postprocess_nodes(retriever.retrieve("refund"))
    assert len(ok) == 2
    # nodes indexed without stamping carry no fingerprint: not guarded (documented), not refused
    plain = VectorStoreIndex([TextNode(text=d) for d in DOCS], embed_model=embed)
    assert len(check.postprocess_nodes(plain.as_retriever(similarity_top_k=2).retrieve("refund"))) == 2


def test_rerank_needs_a_query_and_keeps_retrieval_scores(tiny_ce_dir):
    rerank = SentencekitRerank(str(tiny_ce_dir), top_n=1, keep_retrieval_score=True)
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.1 * i) for i, d in enumerate(DOCS)]
    with pytest.raises(ValueError, match="needs the query"):
        rerank.postprocess_nodes(nodes)
    out = rerank.postprocess_nodes(nodes, query_str="how do i get a refund")
    assert len(out) == 1
    assert out[0].node.metadata["retrieval_score"] == pytest.approx(0.1 * DOCS.index(out[0].node.text))
    assert rerank.postprocess_nodes([], query_str="q") == []
    assert asyncio.run(rerank.apostprocess_nodes(nodes, query_str="how do i get a refund"))[0].node is out[0].node
