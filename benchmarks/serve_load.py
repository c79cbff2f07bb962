"""Load test of ``sentencekit serve`` on loopback: many concurrent clients against one server, compared
with calling ``encode`` once per request, sequentially, in one process (what a server without dynamic
batching amounts to).

The server (the default model, all-MiniLM-L6-v2, from its installed package) runs as a subprocess on
127.0.0.1; CLIENTS asyncio clients each send REQUESTS ``POST /v1/embeddings`` requests of 1 to 16
texts (queries, titles and passages of the bundled sample corpus, fixed seed) over their own
keep-alive connection, one after the other. It stops by itself: after every request, or after
``--timeout`` seconds. Two references run in this process: the same requests encoded one at a time
(``--baseline-requests`` of them), and all texts of a round in ONE ``encode`` call (the most a server
can hope for: issue 19's target is server texts/s >= 0.90 of it). Server and references alternate over
``--rounds`` rounds, so that drift on a shared machine hits them alike.

    .venv/bin/python benchmarks/serve_load.py                           # 64 clients x 50 requests
    .venv/bin/python benchmarks/serve_load.py --clients 32 --requests 10 --baseline-requests 200

Prints requests/s, texts/s, p50/p99 latency, errors (must be 0), the batches the server formed and
the throughput ratios of the server to the one-request-at-a-time baseline and to the one batched call.
Exits 1 when a request failed or the server did not beat the one-request-at-a-time baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HOST = "127.0.0.1"  # loopback only


def text_pool() -> list[str]:
    from sentencekit.search.corpus import SAMPLE_CORPUS, load_corpus

    docs = load_corpus(SAMPLE_CORPUS)
    queries = [json.loads(line)["query"] for line in (SAMPLE_CORPUS.parent / "sample_queries.jsonl").open()]
    return queries + [d.title for d in docs if d.title] + [d.text for d in docs]


def make_requests(n_clients: int, n_requests: int, seed: int = 0) -> list[list[list[str]]]:
    """requests[client][i] = the texts of that request (1 to 16)."""
    rng = random.Random(seed)
    pool = text_pool()
    return [[rng.sample(pool, rng.randint(1, 16)) for _ in range(n_requests)] for _ in range(n_clients)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, extra: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sentencekit.cli", "serve", "--model", model, "--host", HOST,
                                 "--port", str(port), *extra], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not come up")


# -- a minimal keep-alive HTTP/1.1 client (cheap: the load generator shares the CPU with the server) ----
class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        body = json.dumps(payload).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def run_load(port: int, requests: list[list[list[str]]], fmt: str, timeout: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    texts_done = 0
    stop_at = time.monotonic() + timeout

    async def client(batches: list[list[str]]) -> None:
        nonlocal texts_done
        conn = Connection(port)
        try:
            for texts in batches:
                if time.monotonic() > stop_at:
                    return
                t0 = time.perf_counter()
                try:
                    status, data = await conn.post("/v1/embeddings", {"input": texts, "model": "bench",
                                                                      "encoding_format": fmt})
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    await conn.close()
                    continue
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"HTTP {status}: {data[:200]!r}")
                else:
                    texts_done += len(texts)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(b) for b in requests))
    return {"seconds": time.perf_counter() - started, "latencies": latencies, "errors": errors,
            "texts": texts_done}


async def run_overload(port: int, n_clients: int, seconds: float, fmt: str, client_timeout: float,
                       honor_retry_after: bool, seed: int = 1) -> dict:
    """``n_clients`` clients sending for ``seconds``, each retrying at once after an answer (or after the
    ``Retry-After`` of a 429 / 503 with ``honor_retry_after``); a client gives up on a request after
    ``client_timeout`` seconds and closes its connection, as HTTP clients with a timeout do."""
    rng = random.Random(seed)
    pool = text_pool()
    counts = {"ok": 0, "texts": 0, "shed": 0, "timeouts": 0, "errors": 0}
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        conn = Connection(port)
        try:
            while time.monotonic() < stop_at:
                texts = rng.sample(pool, rng.randint(1, 16))
                t0 = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(
                        conn.post("/v1/embeddings", {"input": texts, "model": "bench", "encoding_format": fmt}),
                        client_timeout)
                except asyncio.TimeoutError:
                    counts["timeouts"] += 1
                    await conn.close()
                    continue
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    counts["errors"] += 1
                    errors.append(f"{type(exc).__name__}: {exc}")
                    await conn.close()
                    continue
                if status == 200:
                    if time.monotonic() <= stop_at:  # count only what was done inside the window
                        counts["ok"] += 1
                        counts["texts"] += len(texts)
                        latencies.append(time.perf_counter() - t0)
                elif status in (429, 503):
                    counts["shed"] += 1
                    if honor_retry_after:
                        await asyncio.sleep(1.0)
                else:
                    counts["errors"] += 1
                    errors.append(f"HTTP {status}: {data[:200]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(n_clients)))
    return {**counts, "seconds": seconds, "latencies": latencies, "error_list": errors}


def overload(port: int, args: argparse.Namespace) -> int:
    """Goodput (texts/s answered 200) of ``--overload-clients`` clients against the capacity of the server:
    the texts/s of as many clients as ``--max-concurrent-requests`` (its load without shedding)."""
    limit = args.max_concurrent_requests
    phases = [("capacity", limit), ("overload", args.overload_clients)]
    results: dict[str, list[dict]] = {name: [] for name, _ in phases}
    for r in range(args.rounds):
        for name, clients in phases:
            results[name].append(asyncio.run(run_overload(
                port, clients, args.overload_seconds / args.rounds, args.format, args.client_timeout,
                args.honor_retry_after, seed=r)))
    print(f"overload: --max-concurrent-requests {limit}; {args.overload_clients} clients for "
          f"{args.overload_seconds:.0f} s against {limit} clients for as long; "
          f"client timeout {args.client_timeout:.0f} s; Retry-After "
          f"{'honored' if args.honor_retry_after else 'ignored (immediate retry)'}; {os.cpu_count()} CPUs")
    header = ("phase", "clients", "200s", "texts/s (goodput)", "p50 ms", "p99 ms", "429/503", "client timeouts",
              "other errors")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    rates = {}
    for name, clients in phases:
        parts = results[name]
        seconds = sum(p["seconds"] for p in parts)
        lat = [x for p in parts for x in p["latencies"]]
        rates[name] = sum(p["texts"] for p in parts) / seconds
        print(f"| {name} | {clients} | {sum(p['ok'] for p in parts)} | {rates[name]:.0f} | "
              f"{1000 * percentile(lat, 50):.0f} | {1000 * percentile(lat, 99):.0f} | "
              f"{sum(p['shed'] for p in parts)} | "
              f"{sum(p['timeouts'] for p in parts)} | {sum(p['errors'] for p in parts)} |")
    ratio = rates["overload"] / rates["capacity"] if rates["capacity"] else 0.0
    print(f"goodput under overload / capacity: {ratio:.2f} (target >= 0.80)")
    for error in [e for p in results["overload"] + results["capacity"] for e in p["error_list"]][:5]:
        print("error:", error)
    return 0 if ratio >= 0.8 else 1


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(("sentencekit_batch_size_", "sentencekit_batch_requests_")) and "_bucket" not in line:
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0]] = float(value)
    return out


def load_baseline_model(model_folder: str, threads: int | None, backend: str = "torch"):
    import warnings

    from sentencekit import SentenceTransformer
    from sentencekit.pipeline.batching import TruncationWarning

    warnings.simplefilter("ignore", TruncationWarning)  # the server cuts long texts silently too
    return SentenceTransformer(model_folder, device="cpu", num_threads=threads, backend=backend)


def baseline(model, requests: list[list[str]]) -> dict:
    """Each request encoded alone, one after the other, in this process."""
    latencies = []
    started = time.perf_counter()
    for texts in requests:
        t0 = time.perf_counter()
        model.encode(texts)
        latencies.append(time.perf_counter() - t0)
    return {"seconds": time.perf_counter() - started, "latencies": latencies, "errors": [],
            "texts": sum(len(t) for t in requests)}


def batched(model, requests: list[list[str]]) -> dict:
    """All texts of ``requests`` in ONE ``encode`` call (what the server's dynamic batching aims at: the
    issue's reference figure). Latency is not meaningful here: the one call's time is recorded once."""
    texts = [t for r in requests for t in r]
    started = time.perf_counter()
    model.encode(texts)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": [seconds], "errors": [], "texts": len(texts)}


def merge(results: list[dict]) -> dict:
    return {"seconds": sum(r["seconds"] for r in results), "texts": sum(r["texts"] for r in results),
            "latencies": [x for r in results for x in r["latencies"]],
            "errors": [e for r in results for e in r["errors"]]}


def chunks(items: list, n: int) -> list[list]:
    size = -(-len(items) // n)
    return [items[i * size: (i + 1) * size] for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def row(name: str, result: dict) -> tuple:
    n = len(result["latencies"])
    seconds = result["seconds"]
    return (name, n, result["texts"], seconds, n / seconds, result["texts"] / seconds,
            1000 * percentile(result["latencies"], 50), 1000 * percentile(result["latencies"], 99),
            len(result["errors"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--baseline-requests", type=int, default=400,
                        help="requests encoded one at a time for the baseline (the first ones of the workload)")
    parser.add_argument("--format", choices=["base64", "float"], default="base64",
                        help="encoding_format (the OpenAI SDK asks for base64)")
    parser.add_argument("--timeout", type=float, default=600, help="stop sending after this many seconds")
    parser.add_argument("--rounds", type=int, default=3, help="alternate server and baseline this many times")
    parser.add_argument("--threads", type=int, default=None, help="inference threads, server and baseline alike")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--backend", choices=["torch", "onnx", "openvino"], default="torch",
                        help="backend of the server and the baseline alike (the ratio isolates dynamic batching)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `sentencekit serve` flag")
    parser.add_argument("--overload-clients", type=int, default=0,
                        help="instead of the comparison with encode: measure goodput with this many clients "
                             "(e.g. 256) against a server limited to --max-concurrent-requests")
    parser.add_argument("--overload-seconds", type=float, default=120, help="length of each overload phase")
    parser.add_argument("--max-concurrent-requests", type=int, default=64, help="the server's limit (overload)")
    parser.add_argument("--client-timeout", type=float, default=30, help="a client gives up after (overload)")
    parser.add_argument("--honor-retry-after", action="store_true",
                        help="clients wait Retry-After after a 429 / 503 (default: they retry at once)")
    args = parser.parse_args()

    from sentencekit.hub import resolve_model

    folder = str(resolve_model(args.model).path)
    requests = make_requests(args.clients, args.requests)
    flat = [texts for client in requests for texts in client]
    port = free_port()
    extra = [*(["--threads", str(args.threads)] if args.threads else []), "--backend", args.backend,
             *args.server_arg]
    if args.overload_clients:
        extra += ["--max-concurrent-requests", str(args.max_concurrent_requests)]
        with tempfile.TemporaryDirectory() as tmp:
            proc = start_server(folder, port, extra, Path(tmp) / "server.log")
            try:
                asyncio.run(run_load(port, [client[:2] for client in requests[:8]], args.format, 60))  # warm-up
                return overload(port, args)
            finally:
                proc.terminate()
                proc.wait(60)
    model = load_baseline_model(folder, args.threads, args.backend)
    for texts in flat[:5]:
        model.encode(texts)  # warm-up
    # Rounds alternate server and baseline, so that a machine shared with other work slows both alike.
    client_rounds = [chunks(client, args.rounds) for client in requests]
    baseline_rounds = chunks(flat[: args.baseline_requests], args.rounds)
    served_parts, base_parts, batched_parts = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        proc = start_server(folder, port, extra, log)
        try:
            asyncio.run(run_load(port, [client[:2] for client in requests[:8]], args.format, 60))  # warm-up
            before = scrape(port)
            for r in range(args.rounds):
                served_parts.append(asyncio.run(run_load(port, [c[r] for c in client_rounds], args.format,
                                                         args.timeout / args.rounds)))
                base_parts.append(baseline(model, baseline_rounds[r]))
                batched_parts.append(batched(model, [texts for c in client_rounds for texts in c[r]]))
            after = scrape(port)
        finally:
            proc.terminate()
            proc.wait(60)
    served, base, one_call = merge(served_parts), merge(base_parts), merge(batched_parts)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    batches = delta("sentencekit_batch_size_count")
    print(f"model {args.model} ({args.backend}) | {args.clients} clients x {args.requests} requests of 1-16 texts | "
          f"encoding_format={args.format} | {os.cpu_count()} CPUs")
    header = ("mode", "requests", "texts", "seconds", "req/s", "texts/s", "p50 ms", "p99 ms", "errors")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    rows = [row("server (dynamic batching)", served), row("encode per request, sequential", base)]
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.0f} | {r[6]:.0f} | {r[7]:.0f} | {r[8]} |")
    ratio = rows[0][4] / rows[1][4]
    one = row("one batched encode of the same texts", one_call)
    print(f"| {one[0]} | {one[1]} | {one[2]} | {one[3]:.1f} | - | {one[5]:.0f} | - | - | 0 |")
    batched_ratio = rows[0][5] / one[5]
    if batches:
        print(f"server batches: {batches:.0f} model calls, {delta('sentencekit_batch_size_sum') / batches:.1f} texts "
              f"and {delta('sentencekit_batch_requests_sum') / batches:.1f} requests per call on average")
    print(f"throughput ratio server / sequential encode: {ratio:.2f}x (requests/s)")
    print(f"throughput ratio server / one batched encode: {batched_ratio:.2f} (texts/s; target >= 0.90)")
    for error in served["errors"][:5]:
        print("error:", error)
    return 0 if not served["errors"] and ratio > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
