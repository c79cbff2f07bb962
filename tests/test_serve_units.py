"""`sentencekit serve` pieces in-process: settings from flags and environment variables, the dynamic
batcher (packing, grouping, order, error isolation, draining), the token counter on both backends,
Prometheus text, error shapes."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from sentencekit.serve.batcher import BatcherClosed, DynamicBatcher
from sentencekit.serve.http_errors import ApiError, validation_message
from sentencekit.serve.server_config import OPTIONS, ServeConfig, add_serve_arguments
from sentencekit.serve.server_metrics import Registry, ServerMetrics


def parse(argv, environ=None) -> ServeConfig:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ=environ or {})
    return ServeConfig.from_args(parser.parse_args(argv))


# -- settings -----------------------------------------------------------------------------------------
def test_defaults_flags_and_environment_variables():
    config = parse([])
    assert (config.host, config.port, config.max_batch_tokens, config.max_client_batch_size,
            config.max_concurrent_requests, config.backend, config.api_key) == ("127.0.0.1", 8080, 16384, 256, 512,
                                                                               "auto", None)
    env = {"SENTENCEKIT_PORT": "9001", "SENTENCEKIT_API_KEY": "k", "SENTENCEKIT_BACKEND": "onnx",
           "SENTENCEKIT_AUTO_TRUNCATE": "false", "SENTENCEKIT_MAX_BATCH_TOKENS": "512",
           "SENTENCEKIT_RERANKER": "ce", "SENTENCEKIT_SERVED_MODEL_NAME": "m"}
    config = parse([], env)
    assert (config.port, config.api_key, config.backend, config.auto_truncate, config.max_batch_tokens,
            config.reranker, config.served_model_name) == (9001, "k", "onnx", False, 512, "ce", "m")
    assert parse(["--port", "9002", "--auto-truncate"], env).port == 9002  # the flag wins
    assert parse(["--auto-truncate"], env).auto_truncate is True
    assert {o.env for o in OPTIONS} >= {"SENTENCEKIT_MODEL", "SENTENCEKIT_PORT", "SENTENCEKIT_API_KEY",
                                        "SENTENCEKIT_MAX_CLIENT_BATCH_SIZE", "SENTENCEKIT_MAX_CONCURRENT_REQUESTS"}


@pytest.mark.parametrize(("env", "value"), [("SENTENCEKIT_PORT", "http"), ("SENTENCEKIT_MAX_BATCH_TOKENS", "0"),
                                            ("SENTENCEKIT_BACKEND", "tf"), ("SENTENCEKIT_AUTO_TRUNCATE", "maybe")])
def test_bad_environment_values_name_the_variable(env, value):
    with pytest.raises(ValueError, match=env):
        parse([], {env: value})
    assert parse(["--port", "9000", "--max-batch-tokens", "8", "--backend", "torch", "--auto-truncate"],
                 {env: value}).port == 9000  # the flag replaces the bad variable


def test_a_bad_variable_breaks_serve_only(tmp_path):
    env = {**os.environ, "SENTENCEKIT_PORT": "http"}
    run_cli = [sys.executable, "-m", "sentencekit.cli"]
    assert subprocess.run([*run_cli, "--help"], env=env, capture_output=True).returncode == 0
    done = subprocess.run([*run_cli, "serve", "--model", str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "SENTENCEKIT_PORT='http'" in done.stderr


def test_serve_help_lists_variables_and_stays_light():
    code = ("import sys, contextlib, io, sentencekit.cli as c\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "    c.main(['serve', '--help'])\n"
            "print('SENTENCEKIT_MAX_CONCURRENT_REQUESTS' in out.getvalue(), '--api-key' in out.getvalue())\n"
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["True True", "[]"]


# -- batcher ------------------------------------------------------------------------------------------
class Recorder:
    """A batch function that records its calls (thread and items) and doubles numbers."""

    def __init__(self, delay: float = 0.0, fail_on=None):
        self.calls, self.threads, self.delay, self.fail_on = [], set(), delay, fail_on

    def __call__(self, key, items):
        self.calls.append((key, list(items)))
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot handle {self.fail_on}")
        return [x * 2 for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_a_batch_in_order():
    rec = Recorder(delay=0.05)

    async def main():
        batcher = DynamicBatcher(rec, max_batch_tokens=1000)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("k", [1], 1))  # runs alone; the rest queue meanwhile
        await asyncio.sleep(0.01)
        rest = [batcher.submit("k", list(range(10 * i, 10 * i + i + 1)), i + 1) for i in range(1, 6)]
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results

    results = run(main())
    assert [r.values for r in results] == [[2]] + [[2 * x for x in range(10 * i, 10 * i + i + 1)] for i in range(1, 6)]
    assert len(rec.calls) == 2 and results[1].batch_requests == 5 and results[1].batch_inputs == 20
    assert len(rec.threads) == 1  # one inference thread


def test_token_budget_and_keys_split_batches():
    rec = Recorder(delay=0.05)

    async def main():
        batcher = DynamicBatcher(rec, max_batch_tokens=10)
        batcher.start()
        blocker = asyncio.ensure_future(batcher.submit("a", [0], 1))
        await asyncio.sleep(0.01)
        jobs = [batcher.submit("a", [1], 6), batcher.submit("b", [2], 1), batcher.submit("a", [3], 6),
                batcher.submit("a", [4], 4), batcher.submit("b", [5], 1)]
        out = await asyncio.gather(blocker, *jobs)
        await batcher.close()
        return out

    run(main())
    # after the blocker: oldest "a" job plus what fits 10 tokens ([1]+[4]), then "b" jobs together, then [3]
    assert rec.calls[1:] == [("a", [1, 4]), ("b", [2, 5]), ("a", [3])]


def test_a_failing_request_does_not_disturb_its_batch():
    rec = Recorder(delay=0.02, fail_on=13)

    async def main():
        batcher = DynamicBatcher(rec, max_batch_tokens=100)
        batcher.start()
        blocker = asyncio.ensure_future(batcher.submit("k", [0], 1))
        await asyncio.sleep(0.005)
        jobs = [batcher.submit("k", [11, 12], 2), batcher.submit("k", [13], 1), batcher.submit("k", [14], 1)]
        out = await asyncio.gather(blocker, *jobs, return_exceptions=True)
        await batcher.close()
        return out

    out = run(main())
    assert out[1].values == [22, 24] and out[3].values == [28]
    assert isinstance(out[2], ValueError) and "13" in str(out[2])


def test_close_drains_the_queue_and_refuses_new_work():
    rec = Recorder(delay=0.02)

    async def main():
        batcher = DynamicBatcher(rec, max_batch_tokens=100, max_wait_s=10.0)  # would wait long if not closing
        batcher.start()
        jobs = [asyncio.ensure_future(batcher.submit("k", [i], 1)) for i in range(4)]
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await batcher.close()
        with pytest.raises(BatcherClosed):
            await batcher.submit("k", [9], 1)
        return [j.result().values for j in jobs], time.monotonic() - started

    values, took = run(main())
    assert values == [[0], [2], [4], [6]] and took < 5


def test_batch_wait_collects_requests_that_arrive_later():
    rec = Recorder()

    async def main():
        batcher = DynamicBatcher(rec, max_batch_tokens=100, max_wait_s=0.3)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("k", [1], 1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher.submit("k", [2], 1))
        out = await asyncio.gather(first, second)
        await batcher.close()
        return out

    out = run(main())
    assert rec.calls == [("k", [1, 2])] and out[0].queue_s >= 0.25


def test_batcher_reports_metrics():
    metrics = ServerMetrics()

    async def main():
        batcher = DynamicBatcher(Recorder(), max_batch_tokens=100, metrics=metrics, name="embedder")
        batcher.start()
        await asyncio.gather(batcher.submit("k", [1, 2, 3], 7), batcher.submit("k", [4], 2))
        await batcher.close()

    run(main())
    text = metrics.render()
    assert metrics.tokens.get(model="embedder") == 9 and metrics.inputs.get(model="embedder") == 4
    assert 'sentencekit_batch_size_count{model="embedder"}' in text
    assert 'sentencekit_queue_depth{model="embedder"} 0' in text


# -- metrics and errors -------------------------------------------------------------------------------
def test_prometheus_text_format():
    registry = Registry()
    hist = registry.histogram("lat_seconds", "Latency.", [0.1, 1.0], ["route"])
    hist.observe(0.05, route="/a")
    hist.observe(0.5, route="/a")
    gauge = registry.gauge("depth", "Depth.")
    gauge.set(3)
    lines = registry.render().splitlines()
    assert "# TYPE lat_seconds histogram" in lines
    assert 'lat_seconds_bucket{route="/a",le="0.1"} 1' in lines
    assert 'lat_seconds_bucket{route="/a",le="1"} 2' in lines
    assert 'lat_seconds_bucket{route="/a",le="+Inf"} 2' in lines
    assert 'lat_seconds_count{route="/a"} 2' in lines and "depth 3" in lines


# -- route families, error shapes, prompts ---------------------------------------------------------------
#: every route of the server, by hand (not read from the code under test), with its OpenAPI tag; None: a
#: routed alias kept out of the docs
ROUTES = {
    ("POST", "/v1/embeddings"): "OpenAI", ("POST", "/embeddings"): None, ("GET", "/v1/models"): "OpenAI",
    ("POST", "/embed"): "TEI", ("POST", "/similarity"): "TEI", ("POST", "/tokenize"): "TEI",
    ("POST", "/decode"): "TEI", ("POST", "/rerank"): "TEI", ("POST", "/embed_sparse"): "TEI",
    ("POST", "/v1/rerank"): "Cohere / Jina", ("POST", "/v2/rerank"): None,
    ("GET", "/health"): "status", ("GET", "/info"): "status", ("GET", "/metrics"): "status",
}


def stub_models(prompts=None, default_prompt_name=None):
    """Served models that are never run: enough to build the app and resolve prompts."""
    from types import SimpleNamespace

    from sentencekit.serve.models import ServedModel, ServedModels

    model = SimpleNamespace(prompts=prompts or {}, default_prompt_name=default_prompt_name)
    return ServedModels(ServedModel(model, "stub", "stub", "torch", None, "embedder"), None)


def stub_app():
    pytest.importorskip("fastapi")
    from sentencekit.serve.app import create_app

    return create_app(stub_models(), ServeConfig())


def api_routes(app):
    """The app's API routes, one per mounted route. FastAPI before 0.16x copies an included router's
    routes into ``app.routes``; later versions keep the router whole there (``original_router``)."""
    from fastapi.routing import APIRoute

    for route in app.routes:
        included = getattr(route, "original_router", None)
        yield from (r for r in (included.routes if included is not None else [route]) if isinstance(r, APIRoute))


def test_every_route_family_is_mounted_once_and_documented():
    from sentencekit.serve.routes import FAMILIES

    app = stub_app()
    routed = [(method, r.path) for r in api_routes(app) for method in r.methods]
    assert sorted(routed) == sorted(ROUTES)  # each route once: none lost, none mounted twice
    assert len({f.tag for f in FAMILIES}) == len(FAMILIES) == len(set(FAMILIES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a route mounted twice: FastAPI warns "Duplicate Operation ID"
        schema = app.openapi()["paths"]
    documented = {(method.upper(), path): op["tags"] for path, ops in schema.items() for method, op in ops.items()}
    assert documented == {route: [tag] for route, tag in ROUTES.items() if tag is not None}
    errors = {path: {response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                     for op in ops.values() for status, response in op["responses"].items() if status[0] == "4"}
              for path, ops in schema.items()}
    assert errors["/v1/embeddings"] == errors["/v1/rerank"] == {"ErrorOpenAI"}  # each family documents its own
    assert errors["/embed"] == errors["/rerank"] == {"ErrorTEI"}


def test_error_shapes_per_route_family():
    from fastapi.routing import APIRoute

    from sentencekit.serve.routes import FAMILIES

    app = stub_app()
    errors = app.state.errors
    err = ApiError(429, "busy", "Overloaded", headers={"Retry-After": "1"})
    tei = {"error": "busy", "error_type": "Overloaded"}
    assert errors.body("/embed", err) == errors.body("/health", err) == errors.body("/nope", err) == tei
    for path in ("/v1/embeddings", "/embeddings", "/v1/rerank", "/v2/rerank", "/v1/nope"):
        body = errors.body(path, err)["error"]
        assert body == {"message": "busy", "type": "rate_limit_error", "param": None, "code": "overloaded"}, path
    response = errors.response("/v1/embeddings", err)
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    # every route answers in the shape of the family that routes it
    for family in FAMILIES:
        for route in family.router(app.state.service).routes:
            assert isinstance(route, APIRoute) and errors.family(route.path) is family, route.path
    message, param = validation_message([{"type": "missing", "loc": ("body", "query"), "msg": "Field required"}])
    assert (message, param) == ("`query` is required", "query")


def test_two_families_on_one_path_are_refused():
    pytest.importorskip("fastapi")
    from fastapi import APIRouter

    from sentencekit.serve.routes import FALLBACK, ErrorShapes, RouteFamily

    def router(service):
        r = APIRouter()
        r.add_api_route("/same", lambda: None)
        return r

    a, b = (RouteFamily(tag, router, lambda e: {}) for tag in "ab")
    with pytest.raises(ValueError, match="/same is routed by both 'a' and 'b'"):
        ErrorShapes([(a, router(None)), (b, router(None))], FALLBACK)


def test_prompts_are_the_models_own():
    from sentencekit.serve.service import Service

    prompts = {"query": "query: ", "document": "", "passage": "passage: "}
    service = Service(stub_models(prompts), ServeConfig(), ServerMetrics())
    assert service.prompt("query") == "query: " and service.prompt("document") == "" and service.prompt(None) == ""
    with pytest.raises(ApiError) as exc:
        service.prompt("nope")
    assert exc.value.status == 422 and exc.value.param == "prompt_name"
    assert "'query', 'passage'" in exc.value.message  # the prompts a client can use
    default = Service(stub_models(prompts, default_prompt_name="passage"), ServeConfig(), ServerMetrics())
    assert default.prompt(None) == "passage: " and default.prompt("query") == "query: "


def test_serving_leaves_the_process_warning_filters_alone(tiny_st_dir):
    """Truncation is the server's to report (413, usage): the library's warning is quiet around the
    server's own model calls only, never for the rest of the process."""
    import warnings

    from sentencekit.pipeline.batching import TruncationWarning
    from sentencekit.serve.models import load_models

    long_text = "how do i get a refund " * 20  # > the tiny model's 48 tokens
    before = list(warnings.filters)
    served = load_models(ServeConfig(model=str(tiny_st_dir), backend="torch"))
    assert warnings.filters == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert served.embedder.run_embed("", [long_text], 1000).shape == (1, 32)
        assert not [w for w in caught if issubclass(w.category, TruncationWarning)]
        assert served.embedder.model.last_info.num_truncated == 1  # the model did cut it
        served.embedder.model.encode([long_text])  # the user's own calls still warn
        assert [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert warnings.filters == before


# -- token counting on both backends --------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")
def test_token_counter_matches_the_model_tokenizer(tiny_model):
    from sentencekit.serve.tokens import TokenCounter

    counter = TokenCounter.for_model(tiny_model)
    texts = ["Hello World", "how do i get a refund " * 20]
    expected = [len(ids) for ids in tiny_model.tokenizer(texts)["input_ids"]]
    assert counter.lengths(texts) == expected and counter.max_length == 48
    assert counter.too_long(expected[1]) and counter.used(expected[1]) == 48 and not counter.too_long(expected[0])
    ids = tiny_model.tokenizer(["hello world"])["input_ids"]
    assert counter.decode(ids) == ["hello world"]
    assert counter.check_ids([1, 10**6]) == 1 and counter.check_ids([-1]) == 0 and counter.check_ids([1, 2]) is None
    # the special tokens around one text, from the tokenizer's post-processor: [CLS] ... [SEP]
    assert (counter.head, counter.tail) == ([ids[0][0]], [ids[0][-1]]) == ([2], [3])
    assert counter.strip_specials([2, 7, 3]) == counter.strip_specials([7, 3]) == [7]
    assert counter.with_specials([7], [9]) == [2, 9, 7, 3]
    # the model's own tokenizer keeps working from another thread while the counter is used
    threads = [threading.Thread(target=lambda: [counter.lengths(texts) for _ in range(50)]) for _ in range(3)]
    for t in threads:
        t.start()
    tiny_model.encode(texts * 20)
    for t in threads:
        t.join()


def test_token_counter_on_the_onnx_backend(tiny_st_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import shutil

    from sentencekit import SentenceTransformer
    from sentencekit.serve.tokens import TokenCounter

    monkeypatch.setenv("SENTENCEKIT_HOME", str(tmp_path / "home"))
    folder = tmp_path / "model"
    shutil.copytree(tiny_st_dir, folder)
    onnx_model = SentenceTransformer(str(folder), backend="onnx")
    torch_model = SentenceTransformer(str(folder), device="cpu")
    texts = ["Hello World", "how do i get a refund " * 20, "a"]
    assert TokenCounter.for_model(onnx_model).lengths(texts) == TokenCounter.for_model(torch_model).lengths(texts)
    enc = onnx_model.tokenizer.encode(texts)
    counter = TokenCounter.for_model(onnx_model)
    assert [counter.used(n) for n in counter.lengths(texts)] == enc.lengths.tolist()
    assert [counter.too_long(n) for n in counter.lengths(texts)] == enc.truncated.tolist()


def test_postprocess_truncates_then_normalizes(tiny_model):
    from sentencekit.serve.service import postprocess

    texts = ["hello world", "refund policy"]
    full = tiny_model.encode(texts)
    expected = tiny_model.encode(texts, truncate_dim=8, normalize_embeddings=True)
    np.testing.assert_allclose(postprocess(full, 8, True), expected, atol=1e-6)
    np.testing.assert_array_equal(postprocess(full, None, False), full)


def test_auto_backend_prefers_onnx_on_cpu_and_falls_back_to_torch(tiny_st_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import shutil

    import sentencekit.engines as engines
    from sentencekit.engines.onnx_engine import OnnxEngine
    from sentencekit.serve.models import load_models, preferred_backend

    # where OpenVINO is installed and preferred, auto picks it first (tests/test_openvino_engine.py): not here
    monkeypatch.setattr("sentencekit.engines.cpu.openvino_preferred", lambda compute_dtype: False)
    monkeypatch.setattr(engines, "cuda_gpu_visible", lambda: True)  # device=None on a GPU machine: torch
    assert preferred_backend(ServeConfig()) == "torch"
    assert preferred_backend(ServeConfig(device="cpu")) == "onnx"
    monkeypatch.setattr(engines, "cuda_gpu_visible", lambda: False)
    assert preferred_backend(ServeConfig()) == "onnx"
    assert preferred_backend(ServeConfig(device="cuda")) == "torch"
    assert preferred_backend(ServeConfig(compute_dtype="bfloat16")) == "torch"
    assert preferred_backend(ServeConfig(backend="torch")) == "torch"
    folder = tmp_path / "st"
    shutil.copytree(tiny_st_dir, folder)
    served = load_models(ServeConfig(model=str(folder)))
    assert served.embedder.backend == "onnx" and served.embedder.info()["backend"] == "onnx"

    # a model the ONNX backend refuses is served with torch under auto, and refused when onnx was asked for
    def refuse(self, *args, **kwargs):
        raise ValueError("The ONNX backend cannot export this pipeline. Use backend='torch'.")

    monkeypatch.setattr(OnnxEngine, "__init__", refuse)
    served = load_models(ServeConfig(model=str(folder)))
    assert served.embedder.backend == "torch" and served.embedder.run_embed("", ["hello"], 100).shape == (1, 32)
    with pytest.raises(ValueError, match="cannot export"):
        load_models(ServeConfig(model=str(folder), backend="onnx"))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_server_tokenizes_each_input_once(tiny_st_dir, tmp_path, backend):
    """The ids the server counts are the model's input: the model does not tokenize them again, and the
    embeddings equal encode()'s (with a prompt too); an input over the limit still runs from its text."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    import shutil

    from sentencekit.serve.models import load_models
    from sentencekit.serve.service import Service

    shutil.copytree(tiny_st_dir, tmp_path / "m")
    served = load_models(ServeConfig(model=str(tmp_path / "m"), backend=backend))
    model = served.embedder.model
    assert served.embedder.takes_counted_ids
    texts = ["how do i get a refund", "hello", "the cat sat on the mat"]
    expected = model.encode(texts, prompt="query: ")
    calls = []
    engine = model.engine
    original = engine.tokenize
    engine.tokenize = lambda items, task=None: calls.append(len(items)) or original(items, task)
    service = Service(served, ServeConfig(), ServerMetrics())

    async def session():
        service.start()
        try:
            outcome = await service.embed(texts, param="input", prompt_name="query")
            seen = list(calls)
            await service.embed(["refund " * 80], param="input", truncate=True)
            return outcome, seen
        finally:
            await service.close()

    model.prompts["query"] = "query: "
    outcome, seen = run(session())
    np.testing.assert_allclose(outcome.values, expected, atol=1e-5)
    assert seen == []  # no second tokenization
    assert calls == [1]  # too long for the model: it runs from the text, and the model cuts it


# -- request inputs over HTTP in-process: token ids, invalid text, /decode ---------------------------------
def served_client(served, **config):
    """A TestClient over a fresh app of ``served`` (one app per lifespan: closing it stops its batchers)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sentencekit.serve.app import create_app

    return TestClient(create_app(served, ServeConfig(**config)), raise_server_exceptions=False)


def post_raw(client, path, body):
    """POST ``body`` as JSON with non-ASCII escaped, so that a lone surrogate travels as the valid JSON
    escape ``\\ud800`` (a client library encoding UTF-8 would refuse to send it)."""
    import json

    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.fixture(scope="module")
def served_pair(tiny_st_dir, tiny_ce_dir):
    """The tiny embedder and reranker on torch (no ONNX export: nothing is written under SENTENCEKIT_HOME)."""
    from sentencekit.serve.models import load_models

    return load_models(ServeConfig(model=str(tiny_st_dir), reranker=str(tiny_ce_dir), backend="torch"))


def served_on(backend, tiny_st_dir, tmp_path, served_pair):
    if backend == "torch":
        return served_pair
    pytest.importorskip("onnxruntime")
    import shutil

    from sentencekit.serve.models import load_models

    shutil.copytree(tiny_st_dir, tmp_path / "m")
    return load_models(ServeConfig(model=str(tmp_path / "m"), backend="onnx"))


#: "hello 😀" has a token the tiny vocabulary lacks ([UNK], a special token): decoding the ids with
#: special tokens skipped and re-tokenizing (the old way) lost it
ID_TEXTS = ["hello 😀", "how do i get a refund", "the cat sat on the mat"]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_token_id_inputs_embed_as_their_text(backend, tiny_st_dir, tmp_path, served_pair):
    """Ids of a text, with or without the model's special tokens, embed as ``encode(text)``; the prompt's
    ids go after the leading special token; ``usage`` counts the ids the model read."""
    served = served_on(backend, tiny_st_dir, tmp_path, served_pair)
    model, counter = served.embedder.model, served.embedder.tokens
    assert served.embedder.backend == backend
    with_specials = [counter.encode([t])[0].ids for t in ID_TEXTS]
    without = [counter.encode([t], add_special_tokens=False)[0].ids for t in ID_TEXTS]
    assert counter.head == [with_specials[0][0]] and counter.tail == [with_specials[0][-1]]
    assert 1 in without[0]  # [UNK] among the client's ids
    expected = model.encode(ID_TEXTS)
    model.prompts["query"] = "query: "
    try:
        with served_client(served) as client:
            for rows in (with_specials, without):
                r = client.post("/v1/embeddings", json={"input": rows})
                assert r.status_code == 200, r.text
                np.testing.assert_allclose([d["embedding"] for d in r.json()["data"]], expected, atol=1e-5)
                assert r.json()["usage"]["prompt_tokens"] == sum(len(x) for x in with_specials)
                r = client.post("/embed", json={"inputs": rows[0], "normalize": False})  # one sequence: [int]
                assert r.status_code == 200, r.text
                np.testing.assert_allclose(r.json(), expected[:1], atol=1e-5)
                r = client.post("/embed", json={"inputs": rows, "prompt_name": "query"})
                assert r.status_code == 200, r.text
                np.testing.assert_allclose(r.json(), model.encode(ID_TEXTS, prompt="query: "), atol=1e-5)
                assert int(r.headers["x-compute-tokens"]) == sum(
                    len(x) for x in counter.encode(["query: " + t for t in ID_TEXTS]))
    finally:
        del model.prompts["query"]


def test_token_id_inputs_truncate_like_text(served_pair):
    """A row over the limit: 413 with truncate=false; cut to fit with its special tokens kept otherwise
    (as encode cuts the text), from the start with truncation_direction=left."""
    from sentencekit.engines.protocol import Tokenized

    served = served_pair
    model, counter = served.embedder.model, served.embedder.tokens
    text = "please help me reset my password " * 20
    ids = counter.encode([text])[0].ids
    assert len(ids) > model.max_seq_length == 48
    with served_client(served) as client:
        r = client.post("/embed", json={"inputs": [ids], "truncate": False})
        assert r.status_code == 413 and "inputs[0] has" in r.json()["error"], r.text
        r = client.post("/v1/embeddings", json={"input": ids[1:-1]}, )  # --auto-truncate (on by default)
        assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 48
        np.testing.assert_allclose(r.json()["data"][0]["embedding"], model.encode(text), atol=1e-5)
        r = client.post("/embed", json={"inputs": [ids], "truncate": True, "truncation_direction": "Left"})
        left = [ids[0], *ids[len(ids) - 47:]]  # [CLS] + the last 46 ids of the text + [SEP]
        assert r.status_code == 200 and len(left) == 48
        np.testing.assert_allclose(r.json(), model.encode(Tokenized.from_ids([left])), atol=1e-5)


def test_token_ids_on_a_model_that_cannot_run_them_are_refused(served_pair, monkeypatch):
    """Static-embedding and Router models (takes_counted_ids false) answer 422 for token ids, not an
    embedding of re-tokenized decoded text."""
    from sentencekit.serve.models import ServedModel

    monkeypatch.setattr(ServedModel, "takes_counted_ids", property(lambda self: False))
    with served_client(served_pair) as client:
        r = client.post("/v1/embeddings", json={"input": [[5, 6]]})
        assert r.status_code == 422 and "cannot run token ids as they are" in r.json()["error"]["message"], r.text
        assert r.json()["error"]["param"] == "input"
        assert client.post("/v1/embeddings", json={"input": ["hello"]}).status_code == 200


def test_token_ids_with_a_prompt_that_would_not_join_exactly_are_refused(served_pair):
    """"abc" + "a" tokenizes as "abca", not as "abc" then "a": prepending its ids would not be the
    embedding encode(text, prompt="abc") gives, so the request is refused (text still works)."""
    model = served_pair.embedder.model
    model.prompts["glued"] = "abc"
    try:
        with served_client(served_pair) as client:
            r = client.post("/embed", json={"inputs": [5, 6], "prompt_name": "glued"})
            assert r.status_code == 422 and "cannot be put before token ids exactly" in r.json()["error"], r.text
            assert client.post("/embed", json={"inputs": "hello", "prompt_name": "glued"}).status_code == 200
    finally:
        del model.prompts["glued"]


#: (path, body, param named in the message, OpenAI-shaped): every route that takes text, with a lone
#: surrogate in one of its text fields
SURROGATE = "ok \ud800 bad"
TEXT_FIELDS = [
    ("/v1/embeddings", {"input": ["fine", SURROGATE]}, "input[1]", True),
    ("/embeddings", {"input": SURROGATE}, "input", True),
    ("/embed", {"inputs": [SURROGATE]}, "inputs[0]", False),
    ("/similarity", {"inputs": {"source_sentence": SURROGATE, "sentences": ["a"]}}, "inputs.source_sentence", False),
    ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b", SURROGATE]}}, "inputs.sentences[1]",
     False),
    ("/tokenize", {"inputs": ["a", SURROGATE]}, "inputs[1]", False),
    ("/rerank", {"query": SURROGATE, "texts": ["a"]}, "query", False),
    ("/rerank", {"query": "q", "texts": ["a", SURROGATE]}, "texts[1]", False),
    ("/v1/rerank", {"query": "q", "documents": [{"text": SURROGATE}]}, "documents[0]", True),
    ("/v2/rerank", {"query": SURROGATE, "documents": ["a"]}, "query", True),
]


@pytest.mark.parametrize(("path", "body", "where", "openai"), TEXT_FIELDS)
def test_a_lone_surrogate_is_422_naming_the_input(served_pair, path, body, where, openai):
    with served_client(served_pair) as client:
        r = post_raw(client, path, body)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"] if openai else r.json()["error"]
    assert message.startswith(f"{where} has a lone surrogate (U+D800) at character 3"), message
    if openai:
        assert r.json()["error"]["param"] == where.split("[")[0]
    else:
        assert r.json()["error_type"] == "Validation"


def test_other_input_values_before_the_tokenizer(served_pair):
    """Values that could reach the tokenizer: empty texts and NUL are text (as encode takes them), an empty
    id row is the model's special tokens alone (encode("")); huge or negative ids, nested arrays and
    mixed lists are refused with 422."""
    model = served_pair.embedder.model
    with served_client(served_pair) as client:
        r = client.post("/embed", json={"inputs": ["", "a\u0000b"], "normalize": False})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json(), model.encode(["", "a\u0000b"]), atol=1e-5)
        r = client.post("/embed", json={"inputs": [[]], "normalize": False})
        assert r.status_code == 200
        np.testing.assert_allclose(r.json(), model.encode([""]), atol=1e-5)
        for bad, where in (([5, 2**70], "input[1] = 1180591620717411303424"), ([[5], [-1]], "input[1][0] = -1"),
                           ([[5, 10**6]], "input[0][1] = 1000000")):
            r = client.post("/v1/embeddings", json={"input": bad})
            assert r.status_code == 422 and r.json()["error"]["message"].startswith(where), r.text
            assert "vocabulary" in r.json()["error"]["message"] and r.json()["error"]["param"] == "input"
        for bad in ([[[1]]], ["a", 1], [[1], 2], [1.5], [None], ["a", ["b"]]):
            r = client.post("/embed", json={"inputs": bad})
            assert r.status_code == 422 and "`inputs` must be" in r.json()["error"], (bad, r.text)


@pytest.mark.parametrize(("ids", "where"), [([1, 2, 99999999], "ids[2] = 99999999"), ([-1], "ids[0] = -1"),
                                            ([2**70], f"ids[0] = {2**70}"), ([[4], [5, 146]], "ids[1][1] = 146")])
def test_decode_refuses_ids_outside_the_vocabulary(served_pair, ids, where):
    assert served_pair.embedder.tokens.vocab_size == 146  # the tiny vocabulary: 146 is the first id past it
    with served_client(served_pair) as client:
        r = client.post("/decode", json={"ids": ids})
        assert r.status_code == 422 and r.json()["error_type"] == "Tokenizer", r.text
        assert r.json()["error"].startswith(f"{where} is not a token id"), r.text
        assert client.post("/decode", json={"ids": [[4], [5, 145]]}).status_code == 200


@pytest.mark.real_model
def test_the_issue_example_on_minilm(minilm_dir):
    """Issue 12's case: [7592, 100] ("hello 😀" for BERT's tokenizer, 😀 being [UNK]) embeds as the text."""
    from sentencekit.serve.models import load_models

    served = load_models(ServeConfig(model=str(minilm_dir), backend="torch"))
    with served_client(served) as client:
        r = client.post("/v1/embeddings", json={"input": [7592, 100]})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 4, r.text
    np.testing.assert_allclose(r.json()["data"][0]["embedding"], served.embedder.model.encode("hello 😀"), atol=1e-5)


def test_the_server_makes_onnx_sessions_that_do_not_spin(tmp_path, monkeypatch):
    """ONNX sessions do not spin-wait (unless SENTENCEKIT_ORT_SPIN=1) and run_server turns OpenMP's off for
    torch before loading: spinning threads took the event loop's CPU. An OMP_WAIT_POLICY the user set is kept."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from sentencekit.engines.onnx_session import make_session
    from sentencekit.serve.serve_cli import _quiet_inference_threads

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    key = "session.intra_op.allow_spinning"
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("SENTENCEKIT_ORT_SPIN", raising=False)
    _quiet_inference_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    _quiet_inference_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    quiet = make_session(path, 1)
    assert quiet.get_session_options().get_session_config_entry(key) == "0"
    assert quiet.run(None, {"x": np.array([2.0], dtype=np.float32)})[0].tolist() == [2.0]
    monkeypatch.setenv("SENTENCEKIT_ORT_SPIN", "1")  # the user's switch back to ONNX Runtime's spinning
    assert make_session(path, 1).get_session_options().get_session_config_entry(key) == "1"
