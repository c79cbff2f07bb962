"""`sentencekit serve` with a sparse encoder (issue 14): TEI's `POST /embed_sparse` equals `SparseEncoder.encode`,
through the same batcher and admission as the other routes; a `--model` saved as a SparseEncoder is served alone
(the dense routes answer 424 in their family's shape), `--sparse-model` serves one beside a dense model; `/info`,
`/v1/models` and `/metrics` show it; bad requests get the usual 413 / 422. In-process (TestClient) except the
last test, which starts the real server on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from sentencekit.serve.server_config import ServeConfig  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")

TEXTS = ["how do i get a refund", "hello world", "the cat sat on the mat with my dog", "a"]
LONG = "please help me reset my password " * 20  # more tokens than the tiny models' 64


def served_client(served, **config):
    """A TestClient over a fresh app of ``served`` (one app per lifespan)."""
    from fastapi.testclient import TestClient

    from sentencekit.serve.app import create_app

    return TestClient(create_app(served, ServeConfig(**config)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def sparse_only(tiny_splade_dir):
    from sentencekit.serve.models import load_models

    return load_models(ServeConfig(model=str(tiny_splade_dir), backend="torch"))


@pytest.fixture(scope="module")
def both(tiny_st_dir, tiny_mlm_dir):
    """A dense embedder with a sparse encoder beside it (a plain BertForMaskedLM folder: loads as SPLADE)."""
    from sentencekit.serve.models import load_models

    return load_models(ServeConfig(model=str(tiny_st_dir), sparse_model=str(tiny_mlm_dir), backend="torch"))


def assert_equal_to_encode(rows: list, expected) -> None:
    """``/embed_sparse`` rows vs ``encode``'s dense rows: the same active terms, ascending, values within 1e-5."""
    expected = np.asarray(expected)
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        assert all(set(e) == {"index", "value"} and isinstance(e["index"], int) for e in row)
        assert [e["index"] for e in row] == np.flatnonzero(want).tolist()
        np.testing.assert_allclose([e["value"] for e in row], want[want != 0], atol=1e-5, rtol=1e-5)


def test_a_sparse_encoder_folder_is_served_alone_on_embed_sparse(sparse_only):
    assert sparse_only.embedder is None and sparse_only.sparse is not None
    model = sparse_only.sparse.model
    assert type(model).__name__ == "SparseEncoder"
    expected = model.encode(TEXTS).to_dense().numpy()
    with served_client(sparse_only) as client:
        r = client.post("/embed_sparse", json={"inputs": TEXTS})
        assert r.status_code == 200, r.text
        assert_equal_to_encode(r.json(), expected)
        assert all(0 < len(row) <= 12 for row in r.json())  # the saved max_active_dims applies
        assert int(r.headers["x-compute-tokens"]) == sum(len(x) for x in model.tokenizer(TEXTS)["input_ids"])
        assert "x-batch-requests" in r.headers

        r = client.post("/embed_sparse", json={"inputs": TEXTS[0], "prompt_name": "query"})  # one string
        assert r.status_code == 200, r.text
        assert_equal_to_encode(r.json(), model.encode_query(TEXTS[:1]).to_dense().numpy())

        # a text over the limit: cut (from the end, or from the start with "left") as encode cuts it
        r = client.post("/embed_sparse", json={"inputs": [LONG], "truncate": True})
        assert r.status_code == 200
        assert_equal_to_encode(r.json(), model.encode([LONG]).to_dense().numpy())
        left = client.post("/embed_sparse", json={"inputs": [LONG + " refund"], "truncate": True,
                                                  "truncation_direction": "Left"})
        assert left.status_code == 200 and left.json() != r.json()


def test_embed_sparse_requests_are_batched_with_the_others(sparse_only):
    """Concurrent /embed_sparse requests share one model call (the one batcher), each getting its own rows."""
    import threading

    model = sparse_only.sparse.model
    expected = model.encode(TEXTS).to_dense().numpy()
    with served_client(sparse_only, batch_wait_ms=300) as client:
        out: dict[int, tuple[list, str]] = {}

        def one(i: int) -> None:
            r = client.post("/embed_sparse", json={"inputs": TEXTS[i:i + 1]})
            out[i] = (r.json(), r.headers.get("x-batch-requests"))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(TEXTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(len(TEXTS)):
            assert_equal_to_encode(out[i][0], expected[i:i + 1])
        assert max(int(batch) for _, batch in out.values()) > 1
        metrics = client.get("/metrics").text
    assert 'sentencekit_inputs_total{model="sparse"} 4' in metrics
    assert 'route="/embed_sparse"' in metrics


def test_the_other_routes_of_a_sparse_only_server_answer_424(sparse_only):
    with served_client(sparse_only) as client:
        r = client.post("/embed", json={"inputs": ["hello"]})
        assert r.status_code == 424 and r.json()["error_type"] == "Backend"
        assert "/embed_sparse" in r.json()["error"] and "--sparse-model" in r.json()["error"]
        r = client.post("/v1/embeddings", json={"input": ["hello"]})
        assert r.status_code == 424 and r.json()["error"]["code"] == "model_not_loaded"  # OpenAI's shape
        assert client.post("/similarity", json={"inputs": {"source_sentence": "a", "sentences": ["b"]}}
                           ).status_code == 424
        assert client.post("/rerank", json={"query": "a", "texts": ["b"]}).status_code == 424
        # tokenizing needs no dense model: the sparse encoder's tokenizer
        r = client.post("/tokenize", json={"inputs": "hello world"})
        assert r.status_code == 200 and [t["text"] for t in r.json()[0] if not t["special"]] == ["hello", "world"]

        info = client.get("/info").json()
        assert info["model_id"] == sparse_only.sparse.name and "sparse_embedding" in info["model_type"]
        assert info["sparse_model"]["dimension"] == sparse_only.sparse.model.get_embedding_dimension()
        assert info["sparse_model"]["max_active_dims"] == 12 and info["sparse_model"]["similarity_fn_name"] == "dot"
        assert info["routes"] == {"embed": False, "embed_sparse": True, "rerank": False}
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [sparse_only.sparse.name]


@pytest.mark.parametrize(("body", "status", "expected"), [
    ({"inputs": []}, 422, "is empty"),
    ({"inputs": ["x"] * 9}, 413, "--max-client-batch-size 8"),
    ({"inputs": [LONG], "truncate": False}, 413, "truncate=false"),
    ({"inputs": ["x"], "prompt_name": "nope"}, 422, "prompt_name 'nope'"),
    ({"inputs": [1, 2, 3]}, 422, "not token ids"),
    ({"inputs": "x", "truncation_direction": "up"}, 422, "truncation_direction"),
    ({"inputs": ["\ud800"]}, 422, "lone surrogate"),
    ({"text": "x"}, 422, "inputs"),
])
def test_bad_embed_sparse_requests(sparse_only, body, status, expected):
    with served_client(sparse_only, max_client_batch_size=8) as client:
        r = client.post("/embed_sparse", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "error_type"} and expected in r.json()["error"]


def test_a_sparse_model_beside_a_dense_one(both):
    assert both.embedder is not None and both.sparse is not None
    dense, sparse = both.embedder.model, both.sparse.model
    with served_client(both) as client:
        r = client.post("/embed", json={"inputs": TEXTS, "normalize": False})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json(), dense.encode(TEXTS), atol=1e-5)
        r = client.post("/embed_sparse", json={"inputs": TEXTS})
        assert r.status_code == 200
        assert_equal_to_encode(r.json(), sparse.encode(TEXTS).to_dense().numpy())
        info = client.get("/info").json()
        assert "embedding" in info["model_type"] and info["sparse_model"]["model_id"] == both.sparse.name
        assert {m["id"] for m in client.get("/v1/models").json()["data"]} == {both.embedder.name, both.sparse.name}


def test_embed_sparse_without_a_sparse_model_is_424(tiny_st_dir):
    from sentencekit.serve.models import load_models

    served = load_models(ServeConfig(model=str(tiny_st_dir), backend="torch"))
    with served_client(served) as client:
        r = client.post("/embed_sparse", json={"inputs": ["hello"]})
    assert r.status_code == 424 and "--sparse-model" in r.json()["error"]


def test_two_sparse_models_are_refused_at_start(tiny_splade_dir, tiny_mlm_dir):
    from sentencekit.serve.models import load_models

    with pytest.raises(ValueError, match="is a sparse encoder, and --sparse-model names another"):
        load_models(ServeConfig(model=str(tiny_splade_dir), sparse_model=str(tiny_mlm_dir), backend="torch"))


def test_serve_flag_and_variable():
    import argparse

    from sentencekit.serve.server_config import add_serve_arguments

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ={"SENTENCEKIT_SPARSE_MODEL": "splade"})
    assert ServeConfig.from_args(parser.parse_args([])).sparse_model == "splade"
    assert ServeConfig.from_args(parser.parse_args(["--sparse-model", "x"])).sparse_model == "x"


@pytest.mark.server
def test_the_real_server_serves_a_sparse_encoder(tiny_splade_dir, tmp_path):
    from tests.test_serve_http import call, post, start_server

    server = start_server(tmp_path, ["--model", str(tiny_splade_dir)])
    try:
        from sentencekit import SparseEncoder

        model = SparseEncoder(str(tiny_splade_dir), device="cpu")
        status, headers, body = post(server, "/embed_sparse", {"inputs": TEXTS})
        assert status == 200 and "x-inference-time" in headers
        assert_equal_to_encode(body, model.encode(TEXTS).to_dense().numpy())
        assert post(server, "/embed", {"inputs": "x"})[0] == 424
        assert call(server, "GET", "/info")[2]["routes"]["embed_sparse"] is True
        assert "sparse encoder tiny-splade" in server.log.read_text()  # the start-up line names it
    finally:
        server.stop()
