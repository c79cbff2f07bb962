"""`sentencekit serve` under overload and at shutdown, in-process: admission slots (the wait, 429,
hand-over, 503 while draining), cancelling a request whose client left (at the ASGI level), and the
batcher's drain deadline."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from sentencekit.serve.admission import Admission
from sentencekit.serve.batcher import BatcherClosed, DynamicBatcher
from sentencekit.serve.http_errors import ApiError
from sentencekit.serve.server_metrics import ServerMetrics

pytest.importorskip("fastapi")


def run(coro):
    return asyncio.run(coro)


# -- admission ----------------------------------------------------------------------------------------
def test_a_request_past_the_limit_waits_for_a_slot_then_gets_429():
    async def main():
        admission = Admission(limit=1, wait_s=0.3)
        await admission.acquire()
        started = time.monotonic()
        with pytest.raises(ApiError) as err:
            await admission.acquire()
        waited = time.monotonic() - started
        return admission, err.value, waited

    admission, error, waited = run(main())
    assert error.status == 429 and error.headers["Retry-After"] == "1" and "--admission-wait-ms" in error.message
    assert 0.25 < waited < 2 and admission.in_flight == 1 and not admission._waiters


def test_a_freed_slot_goes_to_the_oldest_waiting_request():
    order = []

    async def request(admission, name, hold):
        await admission.acquire()
        order.append(name)
        await asyncio.sleep(hold)
        admission.release()

    async def main():
        admission = Admission(limit=1, wait_s=5.0)
        first = asyncio.ensure_future(request(admission, "first", 0.1))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(request(admission, "second", 0.0))
        await asyncio.sleep(0.01)
        third = asyncio.ensure_future(request(admission, "third", 0.0))
        await asyncio.gather(first, second, third)
        return admission

    admission = run(main())
    assert order == ["first", "second", "third"] and admission.in_flight == 0


def test_no_wait_answers_429_at_once_and_in_flight_is_exported():
    metrics = ServerMetrics()

    async def main():
        admission = Admission(limit=2, wait_s=0.0, metrics=metrics)
        await admission.acquire()
        await admission.acquire()
        with pytest.raises(ApiError) as err:
            await admission.acquire()
        assert "--admission-wait-ms" not in err.value.message
        gauge = metrics.in_flight.get()
        admission.release()
        return gauge, metrics.in_flight.get()

    assert run(main()) == (2, 1)


def test_a_waiting_request_whose_client_left_gives_no_slot_away():
    async def main():
        admission = Admission(limit=1, wait_s=5.0)
        await admission.acquire()
        waiting = asyncio.ensure_future(admission.acquire())
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        admission.release()  # no waiter left: the slot goes back to the pool
        await admission.acquire()  # and can be taken at once
        return admission.in_flight

    assert run(main()) == 1


def test_drain_answers_waiting_and_new_requests_503():
    async def main():
        admission = Admission(limit=1, wait_s=5.0)
        await admission.acquire()
        waiting = asyncio.ensure_future(admission.acquire())
        await asyncio.sleep(0.01)
        admission.drain()
        results = await asyncio.gather(waiting, admission.acquire(), return_exceptions=True)
        admission.release()
        return results, admission.in_flight

    (waited, new), in_flight = run(main())
    for error in (waited, new):
        assert isinstance(error, ApiError) and error.status == 503
        assert error.headers == {"Retry-After": "1", "Connection": "close"}
    assert in_flight == 0


# -- the middleware: a client that leaves, the server's graceful timeout --------------------------------
def middleware(app, admission, metrics):
    from sentencekit.serve.middleware import ServeMiddleware
    from sentencekit.serve.routes import FALLBACK, ErrorShapes

    return ServeMiddleware(app, metrics=metrics, api_key=None, errors=ErrorShapes([], FALLBACK),
                           payload_limit=10_000, routes=["/embed"], admission=admission, admitted_routes=["/embed"])


class Connection:
    """One request as uvicorn hands it to the app: the body, then ``receive`` blocks until the client
    leaves (``leave()``) or the response is complete."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.left = asyncio.Event()
        self._body_sent = False

    def leave(self) -> None:
        self.left.set()

    async def receive(self) -> dict:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": b'{"inputs": "a"}', "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.left.set()  # uvicorn's receive() returns the disconnect once the response is complete


SCOPE = {"type": "http", "method": "POST", "path": "/embed", "headers": [(b"content-type", b"application/json")]}


def test_a_request_whose_client_leaves_is_cancelled_and_frees_its_slot():
    metrics = ServerMetrics()
    events = []

    async def app(scope, receive, send):  # a request waiting in the batcher's queue
        message = await receive()
        events.append(json.loads(message["body"]))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main():
        admission = Admission(limit=1, wait_s=0.0)
        conn = Connection()
        handler = asyncio.ensure_future(middleware(app, admission, metrics)(dict(SCOPE), conn.receive, conn.send))
        await asyncio.sleep(0.05)
        in_flight = admission.in_flight
        started = time.monotonic()
        conn.leave()
        await asyncio.wait_for(handler, 5)
        return in_flight, admission.in_flight, time.monotonic() - started, conn.sent

    held, after, took, sent = run(main())
    assert events == [{"inputs": "a"}, "cancelled"] and sent == []
    assert (held, after) == (1, 0) and took < 1
    assert metrics.requests.get(route="/embed", status="499") == 1


def test_an_answered_request_is_not_cancelled():
    metrics = ServerMetrics()

    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]", "more_body": False})

    async def main():
        admission = Admission(limit=1, wait_s=0.0)
        conn = Connection()
        await middleware(app, admission, metrics)(dict(SCOPE), conn.receive, conn.send)
        return conn.sent, admission.in_flight

    sent, in_flight = run(main())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"[]" and in_flight == 0
    assert metrics.requests.get(route="/embed", status="200") == 1


def test_a_request_cancelled_by_the_graceful_timeout_is_answered_503_not_500():
    metrics = ServerMetrics()

    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(30)

    async def main():
        admission = Admission(limit=1, wait_s=0.0)
        conn = Connection()
        handler = asyncio.ensure_future(middleware(app, admission, metrics)(dict(SCOPE), conn.receive, conn.send))
        await asyncio.sleep(0.05)
        handler.cancel()  # what uvicorn does to requests still running past its graceful timeout
        await asyncio.gather(handler, return_exceptions=True)
        return conn.sent, admission.in_flight

    sent, in_flight = run(main())
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert "shutting down" in sent[1]["body"].decode() and in_flight == 0


# -- the batcher: dropped work, the drain deadline --------------------------------------------------------
class SlowModel:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, []

    def __call__(self, key, items):
        self.calls.append(list(items))
        time.sleep(self.seconds)
        return [x * 2 for x in items]


def test_queued_work_of_a_cancelled_request_never_runs():
    model = SlowModel(0.1)

    async def main():
        batcher = DynamicBatcher(model, max_batch_tokens=100)
        batcher.start()
        busy = asyncio.ensure_future(batcher.submit("k", [1], 1))
        await asyncio.sleep(0.02)
        gone = asyncio.ensure_future(batcher.submit("k", [2], 1))
        kept = asyncio.ensure_future(batcher.submit("k", [3], 1))
        await asyncio.sleep(0.01)
        gone.cancel()  # the middleware cancels the handler of a client that left
        results = await asyncio.gather(busy, kept)
        await batcher.close()
        return [r.values for r in results], batcher.queued_items

    values, queued = run(main())
    assert values == [[2], [6]] and model.calls == [[1], [3]] and queued == 0


def test_drain_runs_what_can_finish_and_fails_the_rest_before_the_deadline():
    model = SlowModel(0.1)

    async def main():
        batcher = DynamicBatcher(model, max_batch_tokens=1)  # one request per batch: 0.1 s each
        batcher.start()
        await batcher.submit("k", [0], 1)  # learn the seconds per token
        jobs = [asyncio.ensure_future(batcher.submit("k", [i], 1)) for i in range(1, 21)]  # 2 s of work
        await asyncio.sleep(0.01)
        started = time.monotonic()
        batcher.drain(started + 0.45)
        results = await asyncio.gather(*jobs, return_exceptions=True)
        took = time.monotonic() - started
        late = await asyncio.gather(batcher.submit("k", [99], 1), return_exceptions=True)
        await batcher.close()
        return results, took, late[0]

    results, took, late = run(main())
    served = [r for r in results if not isinstance(r, BaseException)]
    closed = [r for r in results if isinstance(r, BatcherClosed)]
    assert len(served) + len(closed) == 20 and 2 <= len(served) <= 5, results
    assert [r.values for r in served] == [[2 * i] for i in range(1, len(served) + 1)]  # in order, then 503s
    assert took < 0.8 and isinstance(late, BatcherClosed)
    assert "graceful timeout" in str(closed[0])


def test_drain_without_a_deadline_runs_everything():
    model = SlowModel(0.01)

    async def main():
        batcher = DynamicBatcher(model, max_batch_tokens=1)
        batcher.start()
        jobs = [asyncio.ensure_future(batcher.submit("k", [i], 1)) for i in range(10)]
        await asyncio.sleep(0)
        batcher.drain(None)
        results = await asyncio.gather(*jobs)
        await batcher.close()
        return [r.values for r in results]

    assert run(main()) == [[2 * i] for i in range(10)]


def test_drain_deadline():
    from sentencekit.serve.draining_server import drain_deadline

    assert drain_deadline(10.0, 30.0) == 39.0 and drain_deadline(10.0, 0.0) is None


@pytest.mark.parametrize("admitted", [True, False])
def test_a_client_that_leaves_mid_body_is_counted_499_and_nothing_runs(admitted):
    metrics = ServerMetrics()
    ran = []

    async def app(scope, receive, send):
        ran.append(True)

    async def receive_parts():
        yield {"type": "http.request", "body": b'{"inputs": ', "more_body": True}
        yield {"type": "http.disconnect"}

    async def main():
        admission = Admission(limit=1, wait_s=0.0)
        if not admitted:
            await admission.acquire()  # full: this request is shed (429) but leaves while its body is read
        parts = receive_parts()
        sent = []

        async def send(message):
            sent.append(message)

        await middleware(app, admission, metrics)(dict(SCOPE), parts.__anext__, send)
        return sent, admission.in_flight

    sent, in_flight = run(main())
    assert ran == [] and sent == [] and in_flight == (0 if admitted else 1)
    assert metrics.requests.get(route="/embed", status="499") == 1
