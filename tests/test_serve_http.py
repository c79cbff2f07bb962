"""`sentencekit serve` end to end: the real server runs as a subprocess on 127.0.0.1 and a free port, and
the tests talk to it over HTTP, with the official OpenAI client and with raw TEI / Cohere requests."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")]

TEXTS = ["hello world", "how do i get a refund", "the cat sat on the mat", "a",
         "what is your return policy for a broken item that was delivered late"]
LONG = "please help me reset my password " * 20  # > 48 tokens: the tiny models' limit
KEY = "s3cret"


# -- a server subprocess ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    port: int
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def start_server(tmp: Path, args: list[str], env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> Server:
    """``sentencekit serve ARGS`` (or ``command + ["serve", *args]``) on a free port, once it answers /health."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENTENCEKIT_")}
    clean["SENTENCEKIT_BACKEND"] = "torch"  # the shared tiny model folders must not get ONNX exports beside them
    clean.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "SENTENCEKIT_HOME": str(tmp / "home"),
                  **(env or {})})
    log = tmp / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*(command or [sys.executable, "-m", "sentencekit.cli"]), "serve", "--host",
                                 "127.0.0.1", "--port",
                                 str(port), "--threads", "1", *args], stdout=out, stderr=subprocess.STDOUT, env=clean)
    server = Server(proc, f"http://127.0.0.1:{port}", port, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if call(server, "GET", "/health", timeout=2)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not answer /health in time:\n{log.read_text()}")


def call(server: Server, method: str, path: str, body=None, *, headers=None, raw: bytes | None = None,
         timeout: float = 60):
    """(status, headers, decoded JSON or text) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, head, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, payload = exc.code, dict(exc.headers), exc.read()
    text = payload.decode()
    is_json = "json" in head.get("content-type", "")
    return status, {k.lower(): v for k, v in head.items()}, json.loads(text) if is_json else text


def post(server: Server, path: str, body=None, **kwargs):
    return call(server, "POST", path, body, **kwargs)


@pytest.fixture(scope="session")
def serve_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="session")
def server(serve_tmp, tiny_st_dir, tiny_ce_dir):
    """Embedder + reranker, small limits so the 413s are cheap to reach."""
    srv = start_server(serve_tmp, ["--model", str(tiny_st_dir), "--reranker", str(tiny_ce_dir),
                                   "--served-model-name", "tiny", "--max-client-batch-size", "16",
                                   "--payload-limit", "100000"])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def guarded(serve_tmp, tiny_st_dir):
    """Configured by environment variables: an API key, no reranker, 2 requests in flight at most (and a
    429 at once past them), and a 1 s batch wait so that concurrent requests deterministically share a
    batch (and stay in flight)."""
    srv = start_server(serve_tmp, [], env={"SENTENCEKIT_MODEL": str(tiny_st_dir), "SENTENCEKIT_API_KEY": KEY,
                                           "SENTENCEKIT_MAX_CONCURRENT_REQUESTS": "2",
                                           "SENTENCEKIT_ADMISSION_WAIT_MS": "0",
                                           "SENTENCEKIT_BATCH_WAIT_MS": "1000"})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def st_model(tiny_st_dir):
    from sentencekit import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu")


@pytest.fixture(scope="session")
def ce_model(tiny_ce_dir):
    from sentencekit import CrossEncoder

    return CrossEncoder(str(tiny_ce_dir), device="cpu")


def token_count(model, texts) -> int:
    return sum(min(len(ids), model.max_seq_length) for ids in model.tokenizer(texts)["input_ids"])


AUTH = {"Authorization": f"Bearer {KEY}"}


def in_background(fn, *args, **kwargs):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn(*args, **kwargs)))
    thread.start()
    return thread, box


def wait_for_metric(server: Server, name: str, value: float, headers=None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = call(server, "GET", "/metrics", headers=headers)[2]
        for line in text.splitlines():
            if line.startswith(name + " ") and float(line.split()[-1]) >= value:
                return
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {value}")


# -- OpenAI -------------------------------------------------------------------------------------------
def test_openai_client_gets_encode_embeddings(server, st_model):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    expected = st_model.encode(TEXTS)
    default = client.embeddings.create(model="tiny", input=TEXTS)  # the SDK asks for base64
    as_float = client.embeddings.create(model="tiny", input=TEXTS, encoding_format="float")
    for response in (default, as_float):
        assert [d.index for d in response.data] == list(range(len(TEXTS))) and response.model == "tiny"
        np.testing.assert_allclose(np.array([d.embedding for d in response.data]), expected, atol=1e-5)
        assert response.usage.prompt_tokens == response.usage.total_tokens == token_count(st_model, TEXTS)
    one = client.embeddings.create(model="whatever", input="hello world")
    np.testing.assert_allclose(one.data[0].embedding, expected[0], atol=1e-5)

    # Matryoshka: the first 8 dimensions, renormalized
    short = client.embeddings.create(model="tiny", input=TEXTS, dimensions=8)
    np.testing.assert_allclose(np.array([d.embedding for d in short.data]),
                               st_model.encode(TEXTS, truncate_dim=8, normalize_embeddings=True), atol=1e-5)


def test_openai_wire_format_base64_and_token_ids(server, st_model, tiny_ce_dir):
    status, _, body = post(server, "/v1/embeddings", {"input": TEXTS[:2], "encoding_format": "base64"})
    assert status == 200 and body["object"] == "list" and body["data"][0]["object"] == "embedding"
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]])
    np.testing.assert_allclose(decoded, st_model.encode(TEXTS[:2]), atol=1e-5)

    # token-id arrays (what LangChain sends) are ids of the served model's own tokenizer
    ids = st_model.tokenizer(TEXTS[:2])["input_ids"]
    for payload in (ids, ids[0]):
        status, _, body = post(server, "/embeddings", {"input": payload, "model": "x"})
        assert status == 200
        got = np.array([d["embedding"] for d in body["data"]])
        np.testing.assert_allclose(got, st_model.encode(TEXTS[: len(got)]), atol=1e-5)
    status, _, body = post(server, "/v1/embeddings", {"input": [[5, 10**6]]})
    assert status == 422 and "vocabulary" in body["error"]["message"]
    # ids without the special tokens, one the tiny vocabulary lacks ([UNK]) among them, embed as their text
    ids = st_model.tokenizer("hello 😀", add_special_tokens=False)["input_ids"]
    status, _, body = post(server, "/v1/embeddings", {"input": ids})
    assert status == 200 and 1 in ids and body["usage"]["prompt_tokens"] == len(ids) + 2
    np.testing.assert_allclose(body["data"][0]["embedding"], st_model.encode("hello 😀"), atol=1e-5)

    status, _, body = call(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["tiny", tiny_ce_dir.parent.name]


def test_openai_errors_reach_the_sdk(server):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.embeddings.create(model="tiny", input=["x"] * 17)
    assert exc.value.status_code == 413 and "--max-client-batch-size 16" in exc.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="tiny", input=TEXTS, dimensions=1000)
    status, _, body = post(server, "/v1/embeddings", {"input": [1.5]})
    assert status == 422 and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == "input" and "a list of strings" in body["error"]["message"]


# -- TEI ------------------------------------------------------------------------------------------------
def test_tei_embed(server, st_model):
    status, headers, body = post(server, "/embed", {"inputs": TEXTS})
    assert status == 200 and isinstance(body, list) and len(body) == len(TEXTS)
    np.testing.assert_allclose(np.array(body), st_model.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
    assert int(headers["x-compute-tokens"]) == token_count(st_model, TEXTS) and "x-inference-time" in headers
    status, _, body = post(server, "/embed", {"inputs": "hello world", "dimensions": 4, "normalize": False})
    assert status == 200 and len(body) == 1
    np.testing.assert_allclose(body[0], st_model.encode("hello world")[:4], atol=1e-5)
    status, _, body = post(server, "/embed", {"inputs": "hello", "prompt_name": "query"})  # an empty prompt
    assert status == 200

    # too long: cut by default (auto-truncate), refused with truncate=false
    status, headers, body = post(server, "/embed", {"inputs": [LONG]})
    assert status == 200 and headers["x-compute-tokens"] == "48"
    status, _, body = post(server, "/embed", {"inputs": ["fine", LONG], "truncate": False})
    assert status == 413 and body["error_type"] == "Validation" and "inputs[1]" in body["error"]
    assert "truncate" in body["error"]
    # truncation_direction=left keeps the end of the text instead of its start
    long_text = "refund policy please " * 20 + "the cat sat on the mat"  # 66 tokens > 48
    status, _, body = post(server, "/embed", {"inputs": [long_text], "truncation_direction": "Left"})
    assert status == 200
    budget = st_model.max_seq_length - 2
    words = long_text.split()
    tail = None
    for k in range(len(words)):  # the longest word-boundary suffix within the budget
        candidate = " ".join(words[k:])
        if len(st_model.tokenizer(candidate, add_special_tokens=False)["input_ids"]) <= budget:
            tail = candidate
            break
    np.testing.assert_allclose(body[0], st_model.encode(tail, normalize_embeddings=True), atol=1e-5)
    assert not np.allclose(body[0], st_model.encode(long_text, normalize_embeddings=True), atol=1e-5)


def test_tei_similarity_tokenize_decode(server, st_model):
    sentences = TEXTS[1:]
    status, _, body = post(server, "/similarity", {"inputs": {"source_sentence": TEXTS[0], "sentences": sentences}})
    emb = st_model.encode(TEXTS)
    assert status == 200
    np.testing.assert_allclose(body, st_model.similarity(emb[:1], emb[1:]).numpy()[0], atol=1e-5)

    status, _, body = post(server, "/tokenize", {"inputs": ["Hello refunds"]})
    assert status == 200
    tokens = body[0]
    assert [t["id"] for t in tokens] == st_model.tokenizer("Hello refunds")["input_ids"]
    assert tokens[0]["special"] and tokens[0]["start"] is None
    assert tokens[1] == {"id": tokens[1]["id"], "text": "Hello", "special": False, "start": 0, "stop": 5}

    status, _, body = post(server, "/decode", {"ids": [t["id"] for t in tokens]})
    assert status == 200 and body == ["hello refunds"]
    for ids in ([1, 2, 99999999], [-1], [2**70]):
        status, _, body = post(server, "/decode", {"ids": ids})
        assert status == 422 and body["error_type"] == "Tokenizer" and f"= {ids[-1]} is not" in body["error"]
    # a lone surrogate: valid JSON, invalid text
    status, _, body = post(server, "/embed", raw=b'{"inputs": ["ok \\ud800 bad"]}')
    assert status == 422 and body["error"].startswith("inputs[0] has a lone surrogate"), body


def test_tei_and_cohere_rerank(server, ce_model, tiny_ce_dir):
    query, docs = "how do i get a refund", ["refund policy", "the cat sat on the mat", "password reset", "a"]
    scores = ce_model.predict([(query, d) for d in docs])
    raw = ce_model.predict([(query, d) for d in docs], activation_fn=lambda x: x)
    best_first = list(np.argsort(-scores, kind="stable"))

    status, headers, body = post(server, "/rerank", {"query": query, "texts": docs, "return_text": True})
    assert status == 200 and [r["index"] for r in body] == best_first
    np.testing.assert_allclose([r["score"] for r in body], scores[best_first], atol=1e-5)
    assert [r["text"] for r in body] == [docs[i] for i in best_first]
    status, _, body = post(server, "/rerank", {"query": query, "texts": docs, "raw_scores": True})
    np.testing.assert_allclose(sorted(r["score"] for r in body), sorted(raw), atol=1e-4)

    documents = [docs[0], {"text": docs[1]}, *docs[2:]]
    status, _, body = post(server, "/v1/rerank", {"model": "x", "query": query, "documents": documents, "top_n": 2,
                                                  "return_documents": True})
    assert status == 200 and body["model"] == tiny_ce_dir.parent.name and len(body["results"]) == 2
    assert [r["index"] for r in body["results"]] == best_first[:2]
    assert body["results"][0]["document"] == {"text": docs[best_first[0]]}
    np.testing.assert_allclose(body["results"][0]["relevance_score"], scores[best_first[0]], atol=1e-5)
    assert body["usage"]["total_tokens"] > 0
    status, _, body = post(server, "/v1/rerank", {"query": query, "documents": docs, "top_n": 0})
    assert status == 422 and body["error"]["param"] == "top_n"
    status, _, body = post(server, "/rerank", {"query": query, "texts": ["x"] * 17})
    assert status == 413 and body["error_type"] == "Validation"
    # truncation_direction=left keeps the end of a document that does not fit beside the query
    long_doc = "password reset please " * 20 + "refund policy"
    status, _, body = post(server, "/rerank", {"query": query, "texts": [long_doc], "truncation_direction": "left"})
    budget = ce_model.max_length - 3 - len(ce_model.tokenizer(query, add_special_tokens=False)["input_ids"])
    words = long_doc.split()
    tail = next(" ".join(words[k:]) for k in range(len(words))
                if len(ce_model.tokenizer(" ".join(words[k:]), add_special_tokens=False)["input_ids"]) <= budget)
    assert status == 200 and tail.endswith("refund policy") and len(tail) < len(long_doc)
    np.testing.assert_allclose(body[0]["score"], ce_model.predict([(query, tail)])[0], atol=1e-5)


# -- limits and errors ------------------------------------------------------------------------------------
def test_error_statuses_and_bodies(server):
    status, _, body = post(server, "/embed", {"inputs": ["x"] * 17})
    assert status == 413 and body["error"] == "17 inputs exceed --max-client-batch-size 16; send fewer per request"
    status, _, body = post(server, "/embed", {"inputs": "x" * 150_000})
    assert status == 413 and "--payload-limit" in body["error"]
    status, _, body = post(server, "/embed", raw=b'{"inputs": ["a",')
    assert status == 422 and "malformed JSON" in body["error"]
    status, _, body = post(server, "/embed", {"inputs": ["a", 1]})
    assert status == 422 and body["error_type"] == "Validation" and "`inputs`" in body["error"]
    status, _, body = post(server, "/embed", {"inputs": []})
    assert status == 422 and body["error_type"] == "Empty"
    status, _, body = post(server, "/rerank", {"query": 3, "texts": ["a"]})
    assert status == 422 and "query" in body["error"]
    status, _, body = post(server, "/embed", {"inputs": "a", "prompt_name": "nope"})
    assert status == 422 and "nope" in body["error"]
    status, _, body = post(server, "/embed", raw=b'{"inputs": "a"}', headers={"Content-Type": "text/plain"})
    assert status == 422 and "application/json" in body["error"]
    status, _, body = call(server, "GET", "/nope")
    assert status == 404 and body["error_type"] == "NotFound"
    assert call(server, "GET", "/health")[0] == 200  # the server is unharmed


def test_info_metrics_and_openapi(server, tiny_ce_dir):
    status, _, info = call(server, "GET", "/info")
    assert status == 200 and info["model_id"] == "tiny" and info["dimension"] == 32
    assert info["max_input_length"] == 48 and info["backend"] == "torch"
    assert info["reranker"]["model_id"] == tiny_ce_dir.parent.name
    assert post(server, "/embed", {"inputs": TEXTS})[0] == 200
    status, headers, text = call(server, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in ("sentencekit_requests_total{", "sentencekit_request_errors_total{", "sentencekit_queue_depth{",
                 "sentencekit_batch_size_bucket{", "sentencekit_tokens_total{",
                 "sentencekit_request_duration_seconds_bucket{", "sentencekit_requests_in_flight "):
        assert name in text, name
    assert 'sentencekit_requests_total{route="/embed",status="200"}' in text
    status, _, schema = call(server, "GET", "/openapi.json")
    assert status == 200 and {"/v1/embeddings", "/embed", "/rerank", "/v1/rerank", "/similarity", "/tokenize",
                              "/health", "/info", "/metrics"} <= set(schema["paths"])


# -- dynamic batching, isolation, backpressure, API key (the guarded server) ------------------------------
def test_concurrent_requests_share_a_batch_and_a_bad_one_is_isolated(guarded, st_model):
    a, b = TEXTS[:3], TEXTS[3:]
    first, box_a = in_background(post, guarded, "/embed", {"inputs": a}, headers=AUTH)
    second, box_b = in_background(post, guarded, "/v1/embeddings", {"input": b, "encoding_format": "float"},
                                  headers=AUTH)
    first.join()
    second.join()
    (status_a, head_a, body_a), (status_b, head_b, body_b) = box_a["result"], box_b["result"]
    assert status_a == status_b == 200
    assert head_a["x-batch-requests"] == head_b["x-batch-requests"] == "2" and head_a["x-batch-inputs"] == "5"
    np.testing.assert_allclose(body_a, st_model.encode(a), atol=1e-5)
    np.testing.assert_allclose([d["embedding"] for d in body_b["data"]], st_model.encode(b), atol=1e-5)

    good, box_good = in_background(post, guarded, "/embed", {"inputs": a}, headers=AUTH)
    status, _, body = post(guarded, "/embed", {"inputs": [LONG], "truncate": False}, headers=AUTH)
    good.join()
    assert status == 413
    assert box_good["result"][0] == 200
    np.testing.assert_allclose(box_good["result"][2], st_model.encode(a), atol=1e-5)


def test_queue_full_answers_429_with_retry_after(guarded):
    threads = [in_background(post, guarded, "/embed", {"inputs": [t]}, headers=AUTH) for t in TEXTS[:2]]
    wait_for_metric(guarded, "sentencekit_requests_in_flight", 2, headers=AUTH)
    status, headers, body = post(guarded, "/embed", {"inputs": "one more"}, headers=AUTH)
    assert status == 429 and headers["retry-after"] == "1" and body["error_type"] == "Overloaded"
    assert "--max-concurrent-requests" in body["error"]
    status, _, body = post(guarded, "/v1/embeddings", {"input": "one more"}, headers=AUTH)
    assert status == 429 and body["error"]["type"] == "rate_limit_error"
    for thread, box in threads:
        thread.join()
        assert box["result"][0] == 200


def test_api_key(guarded):
    import openai

    status, _, body = post(guarded, "/embed", {"inputs": "a"})
    assert status == 401 and body["error_type"] == "Unauthorized" and "Bearer" in body["error"]
    status, _, body = post(guarded, "/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer nope"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert call(guarded, "GET", "/info")[0] == 401 and call(guarded, "GET", "/metrics")[0] == 401
    assert call(guarded, "GET", "/health")[0] == 200  # probes need no key
    assert post(guarded, "/embed", {"inputs": "a"}, headers={"X-API-Key": KEY})[0] == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="m", input="a")
    response = openai.OpenAI(base_url=guarded.url + "/v1", api_key=KEY, max_retries=0).embeddings.create(
        model="m", input="a")
    assert len(response.data[0].embedding) == 32


def test_rerank_without_a_reranker_is_424(guarded):
    status, _, body = post(guarded, "/rerank", {"query": "q", "texts": ["a"]}, headers=AUTH)
    assert status == 424 and "--reranker" in body["error"]
    status, _, body = post(guarded, "/v1/rerank", {"query": "q", "documents": ["a"]}, headers=AUTH)
    assert status == 424 and "--reranker" in body["error"]["message"]


# -- shutdown and the ONNX backend ------------------------------------------------------------------------
def test_sigterm_drains_in_flight_requests(serve_tmp, tiny_st_dir, st_model):
    srv = start_server(serve_tmp, ["--model", str(tiny_st_dir), "--batch-wait-ms", "1500"])
    try:
        threads = [in_background(post, srv, "/embed", {"inputs": [t]}) for t in TEXTS]
        wait_for_metric(srv, "sentencekit_requests_in_flight", len(TEXTS))
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        for text, (thread, box) in zip(TEXTS, threads):
            thread.join(30)
            status, _, body = box["result"]
            assert status == 200
            np.testing.assert_allclose(body[0], st_model.encode(text), atol=1e-5)
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        srv.stop()
    assert "Traceback" not in srv.log.read_text()


def test_onnx_backend(serve_tmp, tiny_st_dir, tmp_path, st_model):
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "onnx-model"
    shutil.copytree(tiny_st_dir, folder)
    srv = start_server(serve_tmp, ["--model", str(folder)], env={"SENTENCEKIT_BACKEND": "onnx"})
    try:
        status, _, info = call(srv, "GET", "/info")
        assert status == 200 and info["backend"] == "onnx" and info["dimension"] == 32
        status, headers, body = post(srv, "/embed", {"inputs": TEXTS + [LONG]})
        assert status == 200 and int(headers["x-compute-tokens"]) == token_count(st_model, TEXTS + [LONG])
        np.testing.assert_allclose(body, st_model.encode(TEXTS + [LONG]), atol=1e-4)
        status, _, body = post(srv, "/embed", {"inputs": LONG, "truncate": False})
        assert status == 413
    finally:
        srv.stop()
