"""`sentencekit serve` with a CLIP model (issue 16): `POST /v1/embeddings` (and `/embeddings`) with Infinity's
`"modality": "image"` embeds `data:image/...;base64` URIs exactly as `model.encode` embeds the decoded images;
URLs are refused unless the server was started with `--allow-url-inputs`; a text-only model answers 424; bad
images 422; the usual limits (413) hold. In-process (TestClient)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from sentencekit.serve.server_config import ServeConfig  # noqa: E402


def served_client(served, **config):
    from fastapi.testclient import TestClient

    from sentencekit.serve.app import create_app

    return TestClient(create_app(served, ServeConfig(**config)), raise_server_exceptions=False)


def data_uri(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


IMAGES = [Image.new("RGB", (30, 24), (200, 30, 40)), Image.new("RGB", (20, 20), (10, 40, 220)),
          Image.fromarray((np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3))]


@pytest.fixture(scope="module")
def clip_served(clip_dir):
    from sentencekit.serve.models import load_models

    return load_models(ServeConfig(model=str(clip_dir), backend="torch"))


def test_image_inputs_equal_model_encode(clip_served):
    uris = [data_uri(IMAGES[0]), data_uri(IMAGES[1], "JPEG"), data_uri(IMAGES[2])]
    decoded = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB") for u in uris]
    expected = clip_served.embedder.model.encode(decoded)
    with served_client(clip_served) as client:
        for path in ("/v1/embeddings", "/embeddings"):
            r = client.post(path, json={"input": uris, "modality": "image"})
            assert r.status_code == 200, r.text
            body = r.json()
            np.testing.assert_allclose([d["embedding"] for d in body["data"]], expected, atol=1e-5)
            assert [d["index"] for d in body["data"]] == [0, 1, 2] and body["usage"]["prompt_tokens"] == 3
        one = client.post("/v1/embeddings", json={"input": uris[0], "modality": "image", "dimensions": 8}).json()
        cut = expected[0, :8] / np.linalg.norm(expected[0, :8])
        np.testing.assert_allclose(one["data"][0]["embedding"], cut, atol=1e-5)
        texts = client.post("/v1/embeddings", json={"input": ["a red square"]}).json()  # text stays the default
        np.testing.assert_allclose(texts["data"][0]["embedding"], clip_served.embedder.model.encode("a red square"),
                                   atol=1e-5)


def test_bad_image_inputs_answer_422_and_limits_hold(clip_served):
    with served_client(clip_served, max_client_batch_size=2) as client:
        r = client.post("/v1/embeddings", json={"input": ["https://example.com/cat.jpg"], "modality": "image"})
        assert r.status_code == 422 and "--allow-url-inputs true" in r.json()["error"]["message"]
        r = client.post("/v1/embeddings", json={"input": ["a cat"], "modality": "image"})
        assert r.status_code == 422 and "input[0]" in r.json()["error"]["message"]
        r = client.post("/v1/embeddings", json={"input": [data_uri(IMAGES[0]), "data:image/png;base64,AAAA"],
                                                "modality": "image"})
        assert r.status_code == 422 and "input[1]: The image input" in r.json()["error"]["message"]
        r = client.post("/v1/embeddings", json={"input": [data_uri(IMAGES[0])] * 3, "modality": "image"})
        assert r.status_code == 413
        r = client.post("/v1/embeddings", json={"input": [1, 2], "modality": "image"})
        assert r.status_code == 422
        r = client.post("/v1/embeddings", json={"input": ["x"], "modality": "audio"})
        assert r.status_code == 422


def test_urls_are_accepted_only_with_the_flag(clip_served):
    # with the flag, a URL passes the check and is fetched; an unreachable one (port 9 on 127.0.0.1: nothing
    # listens) answers 422 saying the fetch failed, never 500
    with served_client(clip_served, allow_url_inputs=True) as client:
        r = client.post("/v1/embeddings", json={"input": ["http://127.0.0.1:9/cat.png"], "modality": "image"})
        assert r.status_code == 422 and "Fetching the image input" in r.json()["error"]["message"]


def test_a_text_model_answers_424(tiny_st_dir):
    from sentencekit.serve.models import load_models

    served = load_models(ServeConfig(model=str(tiny_st_dir), backend="torch"))
    with served_client(served) as client:
        r = client.post("/v1/embeddings", json={"input": [data_uri(IMAGES[0])], "modality": "image"})
        assert r.status_code == 424 and "encodes text only" in r.json()["error"]["message"]
