"""Fault injection on a real `sentencekit serve` subprocess (127.0.0.1): SIGTERM under load, and clients
that leave before their answer. The model is the tiny embedder made slow (a sleep before each batch), so
that the queue holds far more work than the graceful timeout allows."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest

from tests.test_serve_http import TEXTS, call, start_server, wait_for_metric

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytestmark = [pytest.mark.server, pytest.mark.filterwarnings("ignore::sentencekit.pipeline.batching.TruncationWarning")]

#: `python -c SLOW_SERVER SECONDS serve ...`: the real CLI, each embedding batch made SECONDS slower
SLOW_SERVER = """
import sys, time
from sentencekit.serve import models
run_embed = models.ServedModel.run_embed
def slow_run_embed(self, key, items, max_batch_tokens):
    time.sleep(float(sys.argv[1]))
    return run_embed(self, key, items, max_batch_tokens)
models.ServedModel.run_embed = slow_run_embed
from sentencekit.cli import main
sys.exit(main(sys.argv[2:]))
"""


def slow_server(tmp, model_dir, seconds: float, *args: str):
    return start_server(tmp, ["--model", str(model_dir), *args],
                        command=[sys.executable, "-c", SLOW_SERVER, str(seconds)])


def post_once(port: int, texts: list[str], timeout: float = 30) -> tuple[str, int | None, dict, bytes]:
    """One POST /embed on its own connection: ("answered", status, headers, body), or ("refused" /
    "dropped", ...) when no connection could be made / it closed without an answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/embed", json.dumps({"inputs": texts}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return "answered", response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except ConnectionRefusedError:
        return "refused", None, {}, b""
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return "dropped", None, {}, b""
    finally:
        conn.close()


def test_sigterm_under_load(tmp_path, tiny_st_dir, tiny_model):
    """64 clients sending 1-4 texts each; SIGTERM with ~10 s of queued work and a 3 s graceful timeout:
    no 500, every refusal a 503 with Retry-After, in-flight work answered correctly, exit in time."""
    graceful = 3.0
    srv = slow_server(tmp_path, tiny_st_dir, 0.25, "--max-batch-tokens", "64", "--graceful-timeout", str(graceful),
                      "--max-concurrent-requests", "64")
    outcomes: list[tuple[float, str, int | None, dict, bytes, list[str]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        k = 0
        while not stop.is_set():
            texts = [TEXTS[(i + k + j) % len(TEXTS)] for j in range(1 + (i + k) % 4)]
            kind, status, headers, body = post_once(srv.port, texts)
            with lock:
                outcomes.append((time.monotonic(), kind, status, headers, body, texts))
            if kind != "answered" or status != 200:
                return  # the server is going away
            k += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    try:
        for t in threads:
            t.start()
        wait_for_metric(srv, "sentencekit_requests_in_flight", 48, timeout=60)
        sigterm_at = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(graceful + 15)
        exited_after = time.monotonic() - sigterm_at
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        srv.stop()
    log = srv.log.read_text()

    answered = [o for o in outcomes if o[1] == "answered"]
    statuses = Counter(o[2] for o in answered)
    assert set(statuses) <= {200, 503}, (statuses, log[-3000:])
    assert statuses[503] > 0, statuses  # more work was queued than the timeout allows: refused, not dropped
    for _, _, status, headers, body, _ in answered:
        if status == 503:
            assert headers["retry-after"] == "1" and "shutting down" in json.loads(body)["error"]
    finished_after_sigterm = [o for o in answered if o[2] == 200 and o[0] > sigterm_at]
    assert finished_after_sigterm, statuses  # work in flight at SIGTERM was answered
    for _, _, _, _, body, texts in finished_after_sigterm[:5]:
        np.testing.assert_allclose(json.loads(body), tiny_model.encode(texts), atol=1e-5)
    assert code in (0, -signal.SIGTERM)
    assert exited_after < graceful + 2.5, f"exited {exited_after:.1f} s after SIGTERM (graceful timeout {graceful})"
    assert "Traceback" not in log and "Cancel" not in log, log[-3000:]  # nothing was cut off by uvicorn


def test_work_of_a_client_that_left_is_dropped(tmp_path, tiny_st_dir):
    """A request queued behind a slow batch whose client disconnects never reaches the model, and its
    slot is free again at once."""
    srv = slow_server(tmp_path, tiny_st_dir, 1.5, "--max-concurrent-requests", "2", "--admission-wait-ms", "0")
    try:
        busy = threading.Thread(target=post_once, args=(srv.port, ["a busy model"]))
        busy.start()
        wait_for_metric(srv, "sentencekit_requests_in_flight", 1)
        body = json.dumps({"inputs": ["nobody reads this", "nor this"]}).encode()
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:  # queued behind the busy batch...
            sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for_metric(srv, "sentencekit_requests_in_flight", 2)
        # ...and gone: its slot frees while the busy batch still runs
        wait_for_metric(srv, 'sentencekit_requests_total{route="/embed",status="499"}', 1, timeout=1.0)
        kind, status, _, _ = post_once(srv.port, ["served"])
        assert (kind, status) == ("answered", 200)
        busy.join(30)
        metrics = call(srv, "GET", "/metrics")[2]
        inputs = [line for line in metrics.splitlines() if line.startswith("sentencekit_inputs_total")]
        assert inputs == ['sentencekit_inputs_total{model="embedder"} 2'], inputs  # "a busy model" + "served"
    finally:
        srv.stop()


def test_sigterm_does_not_wait_for_a_model_call_past_the_timeout(tmp_path, tiny_st_dir):
    """A model call that outlasts --graceful-timeout is abandoned: its request gets 503 (not uvicorn's
    500) and the process exits in time."""
    srv = slow_server(tmp_path, tiny_st_dir, 8.0, "--graceful-timeout", "2")
    try:
        box = {}
        client = threading.Thread(target=lambda: box.setdefault("r", post_once(srv.port, ["a long call"])))
        client.start()
        wait_for_metric(srv, "sentencekit_requests_in_flight", 1)
        time.sleep(0.3)  # the batch is running
        sigterm_at = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(15)
        exited_after = time.monotonic() - sigterm_at
        client.join(15)
    finally:
        srv.stop()
    kind, status, headers, body = box["r"]
    assert (kind, status) == ("answered", 503) and headers["retry-after"] == "1", box
    assert "graceful timeout" in json.loads(body)["error"]
    assert exited_after < 2 + 2.0, f"exited {exited_after:.1f} s after SIGTERM with a 2 s graceful timeout"
    assert "Traceback" not in srv.log.read_text()


def test_a_body_still_arriving_at_the_timeout_gets_503(tmp_path, tiny_st_dir):
    srv = slow_server(tmp_path, tiny_st_dir, 0.0, "--graceful-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"inputs\": ")  # and the rest never comes
            wait_for_metric(srv, "sentencekit_requests_in_flight", 1)
            srv.proc.send_signal(signal.SIGTERM)
            sock.settimeout(10)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        srv.proc.wait(10)
    finally:
        srv.stop()
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"retry-after: 1" in answer.lower() and b"shutting down" in answer
