"""``ServerState``: what the routes of one app share (service, limits, readiness, metrics,
thread pool)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from bentolite.bundle_meta import BundleMeta
from bentolite.exceptions import ArtifactError, BentoliteError, Overloaded
from bentolite.server.batching import Batcher
from bentolite.server.deadlines import Deadlines
from bentolite.server.inflight import InFlight
from bentolite.server.limits import BodyReader, Limits
from bentolite.server.metrics import Metrics
from bentolite.server.openapi import openapi_spec
from bentolite.service import Service

logger = logging.getLogger("bentolite.server.app")

#: Retry-After (seconds) once the artifacts failed to load: only a restart can help
FAILED_RETRY_AFTER = 30


class ServerState:
    """What the routes of one app share: the service, readiness, metrics and the thread pool."""

    def __init__(
        self,
        service: Service,
        *,
        limits: Limits,
        timeout: float | None,
        threads: int | None,
        record_path: str | None = None,
    ) -> None:
        self.service = service
        self.limits = limits
        self.max_body_size = limits.max_body_size
        self.timeout = timeout
        #: one timer for the timeouts of all API requests (deadlines.py)
        self.deadlines = Deadlines(timeout, limits.max_concurrency) if timeout is not None else None
        self.in_flight = InFlight(limits.max_concurrency, limits.max_inflight_bytes, record_path)
        self.body_reader = BodyReader(limits, self.in_flight, self.run_sync)
        self.form_limits = limits.form
        self.threads = threads
        self.metrics = Metrics(service.name, service.version)
        self.status = "ok" if not service.artifacts.missing() else "loading"
        self.status_detail: str | None = None
        self.batchers: list[Batcher] = []
        self._executor: ThreadPoolExecutor | None = None
        self._loading: concurrent.futures.Future[None] | None = None
        self._openapi: bytes | None = None

    # thread pool
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="bentolite-api")
        return self._executor

    def run_sync(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``func(*args)`` in the pool, in a copy of the caller's context (its request id)."""
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self.executor(), context.run, func, *args)

    # readiness
    def start_loading(self) -> None:
        """Load the artifacts in the thread pool, once; the app answers /livez meanwhile."""
        if self.status != "loading" or self._loading is not None:
            return
        # a plain thread-pool future, not tied to one event loop
        self._loading = self.executor().submit(self._load)

    def _load(self) -> None:
        try:
            _load_artifacts(self.service)
        except Exception as exc:  # whatever stops loading, the server must report it, not die
            known = isinstance(exc, BentoliteError)
            self.status_detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
            self.status = "failed"
            logger.error("%s cannot serve: %s", self.service.name, self.status_detail, exc_info=exc)
            return
        self.status = "ok"
        self.in_flight.mark_serving()  # a crash from now on is not a failed start
        logger.info("%s is ready: artifacts loaded", self.service.name)

    def retry_after(self) -> int:
        """Seconds a client should wait before retrying while the service is not ready."""
        return FAILED_RETRY_AFTER if self.status == "failed" else 1

    def check_ready(self) -> None:
        if self.status == "ok":
            return
        self.start_loading()
        if self.status == "failed":  # 503 like "loading": the process is up but cannot serve
            raise Overloaded(
                f"{self.service.name} cannot serve: its artifacts failed to load",
                detail=self.status_detail,
                retry_after=self.retry_after(),
            )
        raise Overloaded(f"{self.service.name} is not ready yet: its artifacts are loading; retry shortly")

    # shutdown
    async def shutdown(self) -> None:
        for batcher in self.batchers:
            await batcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        Metrics.process_exiting()

    def openapi_json(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(openapi_spec(self.service), indent=2).encode("utf-8")
        return self._openapi


def _load_artifacts(service: Service) -> None:
    path = service.bundle_path
    if path is None:  # create_app rejects this case; kept for a service changed afterwards
        raise ArtifactError(f"{service.name} has unpacked artifacts and no bundle to load them from")
    meta = BundleMeta.read(path)
    service.artifacts.load(path / "artifacts", {a.name: a.file for a in meta.artifacts})
