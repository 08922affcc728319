"""Prometheus metrics: requests and latency by route and status, predictions by class, model.

With several worker processes each worker counts on its own; prometheus_client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, set by `python -m service` when workers > 1) sums them, so
`GET /metrics` answers for the whole service whichever worker serves it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
# Sub-millisecond buckets: a single prediction is answered in well under a millisecond.
LATENCY_BUCKETS: Final = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The service's metrics, registered in a registry of their own (one per app)."""

    def __init__(self) -> None:
        # `*_created` series double the output and no dashboard here reads them.
        disable_created_metrics()
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self.registry = CollectorRegistry()
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "predict_buy_http_requests",
            "HTTP requests answered, by method, route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "predict_buy_http_request_duration_seconds",
            "Time from request start to response end, by method, route and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "predict_buy_predictions",
            "Predictions made (single and batch rows), by predicted class.",
            ["predicted_class"],
            registry=self.registry,
        )
        self.client_disconnects = Counter(
            "predict_buy_client_disconnects",
            "Requests whose client went away (or sent its body too slowly) before the answer; "
            "counted apart from server errors.",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "predict_buy_model_info",
            "The model being served: 1 for its version and sha256.",
            ["version", "sha256"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._predicted = (self.predictions.labels("0"), self.predictions.labels("1"))
        # Label lookups take a lock; the few (method, route, status) triples are cached.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_predictions(self, positives: int, total: int) -> None:
        if positives:
            self._predicted[1].inc(positives)
        if total - positives:
            self._predicted[0].inc(total - positives)

    def track_in_flight(self, count: Callable[[], int]) -> None:
        """Expose the requests being answered now, read from `count` at each scrape.

        One process only: with several workers each would report its own, so it is left out.
        """
        if not self.multiprocess:
            gauge = Gauge(
                "predict_buy_http_requests_in_flight",
                "Requests being answered now.",
                registry=self.registry,
            )
            gauge.set_function(count)

    def count_client_disconnect(self) -> None:
        self.client_disconnects.inc()

    def set_model(self, version: str, sha256: str) -> None:
        self.model_info.labels(version, sha256).set(1)

    def render(self) -> bytes:
        """The exposition text; in multiprocess mode, summed over every worker."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
