"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: counters, gauges
and histograms with labels, no client library needed.

Metrics are updated only from the event loop thread (the batcher's inference thread never touches
them), so they need no lock.

>>> registry = Registry()
>>> requests = registry.counter("demo_requests_total", "Requests.", ["route"])
>>> requests.inc(route="/embed")
>>> print(registry.render().strip())
# HELP demo_requests_total Requests.
# TYPE demo_requests_total counter
demo_requests_total{route="/embed"} 1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help, tuple(labels)

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A value that only goes up."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(self.values.items())]


class Gauge(Counter):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = float(value)

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(float(b) for b in buckets)) + (math.inf,)
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1  # cumulative buckets: every bound at or above the value counts it
        row[-2] += value
        row[-1] += 1

    def count(self, **labels: str) -> float:
        row = self.series.get(self._key(labels))
        return row[-1] if row else 0.0

    def lines(self) -> list[str]:
        out = []
        for key, row in sorted(self.series.items()):
            for bound, n in zip(self.buckets, row):
                le = 'le="' + _number(bound) + '"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(n)}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(row[-2])}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {_number(row[-1])}")
        return out


class Registry:
    """The metrics of one server, rendered together."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def _add(self, metric: _Metric) -> _Metric:
        self.metrics.append(metric)
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labels))  # type: ignore[return-value]

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help, labels))  # type: ignore[return-value]

    def histogram(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
        return self._add(Histogram(name, help, buckets, labels))  # type: ignore[return-value]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines += metric.header() + metric.lines()
        return "\n".join(lines) + "\n"


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class ServerMetrics:
    """The metrics ``sentencekit serve`` exports at ``/metrics``."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.counter("sentencekit_requests_total", "HTTP requests answered, by route and status.",
                                  ["route", "status"])
        self.errors = r.counter("sentencekit_request_errors_total", "Requests answered with an error status.",
                                ["route", "status"])
        self.latency = r.histogram("sentencekit_request_duration_seconds", "Time from request to response.",
                                   LATENCY_BUCKETS, ["route"])
        self.in_flight = r.gauge("sentencekit_requests_in_flight", "Inference requests admitted, not yet answered.")
        self.queue_depth = r.gauge("sentencekit_queue_depth", "Inputs waiting in the batch queue.", ["model"])
        self.queue_time = r.histogram("sentencekit_queue_duration_seconds", "Time an input waited for its batch.",
                                      LATENCY_BUCKETS, ["model"])
        self.inference_time = r.histogram("sentencekit_inference_duration_seconds",
                                          "Time of one batch's model call.", LATENCY_BUCKETS, ["model"])
        self.batch_size = r.histogram("sentencekit_batch_size", "Inputs per model call.", SIZE_BUCKETS, ["model"])
        self.batch_requests = r.histogram("sentencekit_batch_requests", "Requests sharing one model call.",
                                          SIZE_BUCKETS, ["model"])
        self.batch_tokens = r.histogram("sentencekit_batch_tokens", "Tokens per model call.", TOKEN_BUCKETS,
                                        ["model"])
        self.tokens = r.counter("sentencekit_tokens_total", "Tokens read by the models.", ["model"])
        self.inputs = r.counter("sentencekit_inputs_total", "Inputs (texts, pairs) run through the models.",
                                ["model"])

    def render(self) -> str:
        return self.registry.render()
