"""`sentencekit serve --reranker MULTIVECTOR_MODEL`: TEI's `/rerank` and Cohere's `/v1/rerank` score documents
by late interaction (MaxSim of the query's and each document's token vectors), equal to the model's own
`similarity`; a multi-vector model named as `--model` / `--sparse-model` is refused with the way to serve it;
documents over the document length get the usual 413 with truncate=false. In-process (TestClient)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

from sentencekit.serve.server_config import ServeConfig  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")

QUERY = "how do i get a refund"
DOCS = ["refunds take ten days", "the cat sat on the mat", "how do i get my money back", "a"]


@pytest.fixture(scope="module")
def served(tiny_st_dir, tiny_mv_dir):
    from sentencekit.serve.models import load_models

    return load_models(ServeConfig(model=str(tiny_st_dir), reranker=str(tiny_mv_dir), backend="torch"))


def client_of(served, **config):
    from fastapi.testclient import TestClient

    from sentencekit.serve.app import create_app

    return TestClient(create_app(served, ServeConfig(**config)), raise_server_exceptions=False)


def expected_scores(model, query, docs):
    return model.similarity(model.encode_query([query]), model.encode_document(docs))[0].numpy()


def test_rerank_routes_score_by_maxsim(served):
    model = served.reranker.model
    assert served.reranker.kind == "late_interaction" and type(model).__name__ == "MultiVectorEncoder"
    want = expected_scores(model, QUERY, DOCS)
    with client_of(served) as client:
        r = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True})
        assert r.status_code == 200, r.text
        got = {hit["index"]: hit["score"] for hit in r.json()}
        np.testing.assert_allclose([got[i] for i in range(len(DOCS))], want, rtol=1e-5, atol=1e-5)
        assert [hit["index"] for hit in r.json()] == np.argsort(-want, kind="stable").tolist()

        r = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["index"] for x in results] == np.argsort(-want, kind="stable")[:2].tolist()
        np.testing.assert_allclose([x["relevance_score"] for x in results], np.sort(want)[::-1][:2], rtol=1e-5)

        info = client.get("/info").json()
        assert "late interaction" in str(info)


def test_long_documents_follow_the_document_length(served):
    model = served.reranker.model
    limit = model.engine.max_seq_length_for("document")
    long_doc = "refund please " * limit
    with client_of(served) as client:
        r = client.post("/rerank", json={"query": QUERY, "texts": [long_doc], "truncate": False})
        assert r.status_code == 413, r.text
        r = client.post("/rerank", json={"query": QUERY, "texts": [long_doc], "truncate": True, "raw_scores": True})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()[0]["score"], expected_scores(model, QUERY, [long_doc])[0], rtol=1e-5)


def test_multivector_model_as_embedder_is_refused(tiny_mv_dir):
    from sentencekit.serve.models import load_models

    with pytest.raises(ValueError, match="--model .* multi-vector .* Serve it as --reranker"):
        load_models(ServeConfig(model=str(tiny_mv_dir), backend="torch"))


def test_served_on_onnx_runtime_the_scores_are_the_same(served, tiny_st_dir, tiny_mv_dir, tmp_path):
    import shutil

    from sentencekit.serve.models import load_models

    # copies: the ONNX exports are written beside the models
    dense, folder = shutil.copytree(tiny_st_dir, tmp_path / "st"), shutil.copytree(tiny_mv_dir, tmp_path / "mv")
    onnx = load_models(ServeConfig(model=str(dense), reranker=str(folder), backend="onnx"))
    assert onnx.reranker.backend == "onnx" and onnx.reranker.kind == "late_interaction"
    want = expected_scores(served.reranker.model, QUERY, DOCS)
    scores = onnx.reranker.run_rerank(True, [(QUERY, d) for d in DOCS], 4096)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)
