"""Clipper's model-container metrics (``clipper_mc_*``), served over HTTP for Prometheus.

The names and bucket boundaries are the ones Clipper's own Python container publishes, so
Clipper's scrape jobs and dashboards read a bentolite container unchanged. The metrics live in a
registry of their own, not the process-wide one.
"""

from __future__ import annotations

import threading

from bentolite.exceptions import ConfigError

# Clipper's bucket boundaries for these metrics, in milliseconds.
_SLOW_BUCKETS = (5, 10, 20, 35, 50, 75, 100, 150, 200, 250, 300, 400, 500)
_FAST_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ContainerMetrics:
    """Clipper's model-container metrics in a registry of their own, served over HTTP."""

    def __init__(self, port: int, addr: str) -> None:
        from http.server import ThreadingHTTPServer

        from prometheus_client import CollectorRegistry, Counter, Histogram, MetricsHandler

        self.registry = CollectorRegistry()
        self.pred_total = Counter(
            "clipper_mc_pred_total", "Prediction batches answered.", registry=self.registry
        )
        self.end_to_end = Histogram(
            "clipper_mc_end_to_end_latency_ms",
            "Milliseconds from receiving a request to sending its answer.",
            buckets=_SLOW_BUCKETS,
            registry=self.registry,
        )
        self.handle_time = Histogram(
            "clipper_mc_handle_time_ms",
            "Milliseconds spent in the prediction function.",
            buckets=_SLOW_BUCKETS,
            registry=self.registry,
        )
        self.recv_time = Histogram(
            "clipper_mc_recv_time_ms",
            "Milliseconds to receive a request's frames and check them.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        self.parse_time = Histogram(
            "clipper_mc_parse_time_ms",
            "Milliseconds from a request's frames being checked to its prediction starting.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        try:
            self._server = ThreadingHTTPServer((addr, port), MetricsHandler.factory(self.registry))
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clipper-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
