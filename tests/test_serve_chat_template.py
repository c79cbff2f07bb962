"""`sentencekit serve` with models that render inputs through a chat template (a generative reranker, a decoder
embedder): usage / ``x-compute-tokens`` and the ``truncate=false`` 413 count the template's tokens, which the
model's own tokenization gives once; the counted rows run as they are."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.server_config import ServeConfig
from sentencekit.serve.server_metrics import ServerMetrics
from tests.decoder_folders import (
    CHATML_TEMPLATE,
    RERANKER_PAIRS,
    build_generative_reranker,
    build_tiny_decoder,
    decoder_test_marks,
)

pytestmark = decoder_test_marks()
QUERY = RERANKER_PAIRS[0][0]
DOCS = [d for _, d in RERANKER_PAIRS]
TEXTS = ["hello", "the cat sat on the mat", "how do i get a refund"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from sentencekit.serve.models import load_models

    root = tmp_path_factory.mktemp("serve-chat")
    embedder = build_tiny_decoder(root / "embedder", "qwen3", append_eos=True, chat_template=CHATML_TEMPLATE)
    reranker = build_generative_reranker(root / "reranker", "qwen3-reranker")
    with pytest.warns(UserWarning):
        return load_models(ServeConfig(model=str(embedder), reranker=str(reranker), backend="torch"))


def rendered_lengths(model, conversations) -> list[int]:
    """Token counts of conversations rendered by the tokenizer's own ``apply_chat_template``."""
    tok = model.tokenizer
    return [len(tok(tok.apply_chat_template(c, tokenize=False), add_special_tokens=False)["input_ids"])
            for c in conversations]


def run_service(served, work):
    from sentencekit.serve.service import Service

    service = Service(served, ServeConfig(), ServerMetrics())

    async def session():
        service.start()
        try:
            return await work(service)
        finally:
            await service.close()

    return asyncio.run(session())


def count_tokenize_calls(model) -> list[int]:
    calls: list[int] = []
    engine = model.engine
    original = engine.tokenize
    engine.tokenize = lambda items, task=None: calls.append(len(items)) or original(items, task)
    return calls


def test_rerank_counts_the_template_tokens_and_tokenizes_once(served):
    model = served.reranker.model
    assert model.engine.message_format == "flat"
    expected_scores = model.predict([(QUERY, d) for d in DOCS], activation_fn=lambda x: x)
    rendered = rendered_lengths(model, [[{"role": "query", "content": QUERY}, {"role": "document", "content": d}]
                                        for d in DOCS])
    plain = sum(served.reranker.tokens.lengths([(QUERY, d) for d in DOCS]))
    calls = count_tokenize_calls(model)
    try:
        outcome = run_service(served, lambda s: s.rerank(QUERY, DOCS, param="texts", raw_scores=True))
    finally:
        del model.engine.tokenize
    assert outcome.tokens == sum(rendered) > plain + 40 * len(DOCS)  # the reranker prompt is counted
    assert calls == [len(DOCS)]  # the counted rows run as they are: no second tokenization
    np.testing.assert_allclose(outcome.values, expected_scores, atol=1e-5)


def test_rerank_413_counts_the_template(served):
    """A pair far under the limit as plain text but over it once rendered is refused with truncate=false, and
    counted at the limit with truncate=true."""
    model, counter = served.reranker.model, served.reranker.tokens
    before = (model.max_seq_length, counter.max_length)
    model.max_seq_length = counter.max_length = 40
    try:
        assert sum(counter.lengths([("hi", "hello there")])) < 40
        with pytest.raises(ApiError) as caught:
            run_service(served, lambda s: s.rerank("hi", ["hello there"], param="texts", truncate=False))
        assert caught.value.status == 413 and "chat template" in str(caught.value)
        outcome = run_service(served, lambda s: s.rerank("hi", ["hello there"], param="texts", truncate=True))
        assert outcome.tokens == 40
        with pytest.raises(ApiError) as caught:
            run_service(served, lambda s: s.rerank("hi", ["hello there"], param="texts", truncate=True,
                                                   direction="left"))
        assert caught.value.status == 422
    finally:
        model.max_seq_length, counter.max_length = before


def test_embed_runs_the_template_rows(served):
    model = served.embedder.model
    assert model.engine.message_format == "flat" and not served.embedder.takes_counted_ids
    model.prompts["query"] = "Find the answer"
    try:
        expected = model.encode(TEXTS, prompt_name="query")
        rendered = rendered_lengths(model, [[{"role": "system", "content": "Find the answer"},
                                             {"role": "user", "content": t}] for t in TEXTS])
        calls = count_tokenize_calls(model)
        try:
            outcome = run_service(served, lambda s: s.embed(TEXTS, param="input", prompt_name="query"))
        finally:
            del model.engine.tokenize
    finally:
        model.prompts["query"] = ""
    assert outcome.tokens == sum(rendered) and calls == [len(TEXTS)]
    np.testing.assert_allclose(outcome.values, expected, atol=1e-5)


def test_embed_refuses_token_ids_for_a_template_model(served):
    with pytest.raises(ApiError) as caught:
        run_service(served, lambda s: s.embed([[1, 2, 3]], param="input"))
    assert caught.value.status == 422 and "chat template" in str(caught.value)
