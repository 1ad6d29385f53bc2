"""Prometheus metrics of one app, in a registry of its own (never prometheus_client's global one).

Exported at ``GET /metrics``:

* ``bentolite_requests_total{api, status}``: requests answered, by API and HTTP status;
* ``bentolite_request_duration_seconds{api}``: histogram of the time from a request's arrival
  to its response;
* ``bentolite_requests_in_flight{api}``: requests being handled now;
* ``bentolite_batch_size{api}``: histogram of the items per call of a batched API (APIs that
  do not batch have no batch series);
* ``bentolite_batch_duration_seconds{api}``: histogram of the duration of those calls;
* ``bentolite_batch_limit{api}``: the adaptive batch size limit (see ``batching.py``);
* ``bentolite_service_info{name, version}``: always 1.

With several workers (``serve(workers=N)``), the runner sets ``PROMETHEUS_MULTIPROC_DIR`` so
every worker writes its values there and any worker answers with the sum over all of them.
A process serving alone keeps the two series each request updates (requests and duration) in
plain numbers instead, rendered when scraped, and its in-flight gauge alike.
The ``_created`` series prometheus_client adds to counters and histograms are left out: they
double the output and Prometheus does not use them.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: (name, help) of the two series every API request updates
REQUESTS = ("bentolite_requests", "Requests answered, by API and HTTP status.")
DURATION = ("bentolite_request_duration_seconds", "Time from a request's arrival to its response, by API.")


class Metrics:
    """The metrics of one app; :meth:`for_api` gives the per-API handles the server updates."""

    def __init__(self, service_name: str, service_version: str | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        #: the request counts of every API in plain numbers, when this process is the only one
        self.live: _LiveRequests | None = None
        if os.environ.get(MULTIPROC_ENV):  # each worker's values go to the directory
            self.requests = Counter(REQUESTS[0], REQUESTS[1], ["api", "status"], registry=self.registry)
            self.duration = Histogram(
                DURATION[0], DURATION[1], ["api"], buckets=LATENCY_BUCKETS, registry=self.registry
            )
        else:
            self.live = _LiveRequests()
            self.registry.register(self.live)
        self.in_flight = Gauge(
            "bentolite_requests_in_flight",
            "Requests being handled, by API.",
            ["api"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "bentolite_batch_size",
            "Items per call of a batched API.",
            ["api"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_duration = Histogram(
            "bentolite_batch_duration_seconds",
            "Duration of one call of a batched API's function.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_limit = Gauge(
            "bentolite_batch_limit",
            "Current adaptive batch size limit of a batched API.",
            ["api"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        info = Gauge(
            "bentolite_service_info",
            "The service this server runs.",
            ["name", "version"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        info.labels(service_name, service_version or "").set(1)

    def for_api(self, api: str, batch: bool = False) -> ApiMetrics:
        """The handles of one API; its batch series exist only when it batches."""
        return ApiMetrics(self, api, batch)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        shown = CollectorRegistry(auto_describe=False)
        shown.register(_WithoutCreated(self.registry))
        return generate_latest(shown), CONTENT_TYPE_LATEST

    @staticmethod
    def process_exiting() -> None:
        """Drop this process's live gauges from a multi-worker directory."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class _WithoutCreated:
    """A collector showing another registry's metrics without their ``_created`` samples."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class _ApiCounts:
    """One API's answers: per status, and per latency bucket (the last one past every bound)."""

    __slots__ = ("by_status", "buckets", "seconds")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0


class _LiveRequests:
    """``bentolite_requests`` and ``bentolite_request_duration_seconds`` of a process that
    serves alone, as a collector: the counts are plain numbers changed on the event loop only,
    so with no lock (prometheus_client's values take one per change, three per request), and
    become metric families when scraped."""

    def __init__(self) -> None:
        self.apis: dict[str, _ApiCounts] = {}

    def counts(self, api: str) -> _ApiCounts:
        return self.apis.setdefault(api, _ApiCounts())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        requests = CounterMetricFamily(*REQUESTS, labels=["api", "status"])
        duration = HistogramMetricFamily(*DURATION, labels=["api"])
        bounds = [*(floatToGoString(b) for b in LATENCY_BUCKETS), "+Inf"]
        for api, counts in list(self.apis.items()):
            for status, count in sorted(counts.by_status.items()):
                requests.add_metric([api, str(status)], count)
            cumulative, total = [], 0
            for bound, count in zip(bounds, counts.buckets):
                total += count
                cumulative.append((bound, total))
            duration.add_metric([api], cumulative, counts.seconds)
        yield requests
        yield duration


class _LiveCount:
    """A count changed on the event loop only, so with no lock (a gauge takes one per change)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class ApiMetrics:
    """The label children of one API, bound once so a request only increments them."""

    def __init__(self, metrics: Metrics, api: str, batch: bool = False) -> None:
        self._api = api
        self._by_status: dict[int, Any] = {}
        self._live = metrics.live.counts(api) if metrics.live is not None else None
        in_flight = metrics.in_flight.labels(api)
        #: counts the API's requests in flight (``inc``, ``dec``)
        self.in_flight: Any = in_flight
        if not os.environ.get(MULTIPROC_ENV):  # else each worker's value goes to the directory
            live = _LiveCount()
            in_flight.set_function(lambda: live.value)  # read when scraped: no lock per request
            self.in_flight = live
        if self._live is None:
            self._requests = metrics.requests
            self._duration = metrics.duration.labels(api)
        if batch:  # a label child is a series: APIs that do not batch get none
            self._batch_size = metrics.batch_size.labels(api)
            self._batch_duration = metrics.batch_duration.labels(api)
            self._batch_limit = metrics.batch_limit.labels(api)

    def answered(self, status: int, seconds: float) -> None:
        """Count one answer (on the event loop)."""
        live = self._live
        if live is not None:
            by_status = live.by_status
            by_status[status] = by_status.get(status, 0) + 1
            live.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            live.seconds += seconds
            return
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self._requests.labels(self._api, str(status))
        counter.inc()
        self._duration.observe(seconds)

    def batch(self, items: int, seconds: float, limit: int) -> None:
        self._batch_size.observe(items)
        self._batch_duration.observe(seconds)
        self._batch_limit.set(limit)
