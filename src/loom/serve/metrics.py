"""Prometheus metrics at GET /metrics (one registry per app, so tests can run several servers)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _EngineCollector:
    """Batching-engine figures, read from the loaded backends at scrape time."""

    def __init__(self, backends: dict) -> None:
        self.backends = backends

    def collect(self):
        families = [
            (GaugeMetricFamily, "loom_queued_requests", "requests waiting for a batch slot", "queued"),
            (GaugeMetricFamily, "loom_active_sequences", "sequences in the running batch", "active"),
            (GaugeMetricFamily, "loom_max_batch_rows", "largest batch decoded so far", "max_rows_seen"),
            (CounterMetricFamily, "loom_decode_steps", "batched decode steps run", "steps"),
            (CounterMetricFamily, "loom_cancelled_sequences", "generations stopped because the client went away", "cancelled"),
        ]
        for kind, name, doc, attr in families:
            family = kind(name, doc, labels=["model"])
            for model, backend in list(self.backends.items()):
                engine = getattr(backend, "engine", None)
                if engine is not None:
                    family.add_metric([model], getattr(engine, attr))
            yield family
        remote = GaugeMetricFamily("loom_remote_in_flight", "requests holding a remote-engine slot", labels=["model"])
        for model, backend in list(self.backends.items()):
            if hasattr(backend, "in_flight"):
                remote.add_metric([model], backend.in_flight)
        yield remote


class Metrics:
    def __init__(self, backends: dict) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("loom_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r)
        self.latency = Histogram("loom_request_seconds", "request latency (to the last byte)", ["endpoint"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("loom_time_to_first_token_seconds", "time to the first generated text", ["model"],
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("loom_prompt_tokens", "prompt tokens processed", ["model"], registry=r)
        self.completion_tokens = Counter("loom_completion_tokens", "tokens generated", ["model"], registry=r)
        self.rate_limited = Counter("loom_rate_limited", "requests refused by per-key limits", registry=r)
        r.register(_EngineCollector(backends))

    def render(self) -> bytes:
        return generate_latest(self.registry)
