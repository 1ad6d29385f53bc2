"""The process that runs ``bentolite serve``'s workers and replaces those that die.

The supervisor binds the listening socket once and starts ``workers`` worker processes
(``spawn``), each loading the service and serving on the shared socket with uvicorn. It never
answers a request itself, so user code that crashes a worker (a segfault, an ``os._exit``)
cannot take it along:

* A worker that dies after it started serving is replaced at once, and one log line names
  what it had in flight: the API and request id of each request, read from the worker's
  in-flight record (``inflight.py``), a file the supervisor creates for each worker.
* A worker that dies before it served (its bundle was deleted, loading its artifacts crashed
  it) is restarted after a growing pause; after ``MAX_START_FAILURES`` such deaths in a row
  its place is given up. When no worker is left, the supervisor exits with status 1.
* SIGTERM or SIGINT: the supervisor closes its copy of the socket, forwards SIGTERM to every
  worker (each drains its requests in flight), waits for them and exits 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Optional

from bentolite.exceptions import BentoliteError
from bentolite.server.inflight import create_record, read_record

logger = logging.getLogger("bentolite.server.supervisor")

#: deaths before serving, in a row, after which a worker's place is given up
MAX_START_FAILURES = 3
#: pause before restarting a worker that died before serving, doubled at each failure
FIRST_RESTART_PAUSE = 0.5
#: how long to wait for the workers to drain beyond their own graceful-shutdown bound
EXTRA_DRAIN_SECONDS = 5.0
_POLL = 0.25


class _Place:
    """One worker's place: its record file, its process, its run of failed starts."""

    def __init__(self, index: int, record: Path) -> None:
        self.index = index
        self.record = record
        self.process: Optional[multiprocessing.process.BaseProcess] = None
        self.failures = 0
        self.restart_at: float | None = 0.0
        self.given_up = False


class Supervisor:
    """Starts ``workers`` processes running ``worker_main(settings_json, options, sock,
    record_path)`` and keeps them running (see the module docstring)."""

    def __init__(
        self, settings_json: str, options: dict[str, Any], workers: int, *, drain_seconds: float | None
    ) -> None:
        self.settings_json = settings_json
        self.options = options
        self.workers = workers
        self.drain_seconds = (drain_seconds or 0) + EXTRA_DRAIN_SECONDS
        self._stopping = False
        self._context = multiprocessing.get_context("spawn")

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until no worker can start (1)."""
        import uvicorn

        config = uvicorn.Config("bentolite.server.runner:app_from_environment", factory=True, **self.options)
        sock = config.bind_socket()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        with tempfile.TemporaryDirectory(prefix="bentolite-workers-") as records:
            places = [_Place(i, Path(records) / f"worker-{i}.inflight") for i in range(self.workers)]
            try:
                return self._supervise(places, sock)
            finally:
                sock.close()
                self._drain(places)
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _supervise(self, places: list[_Place], sock: socket.socket) -> int:
        logger.info("Supervisor [%d] runs %d worker(s)", os.getpid(), self.workers)
        while not self._stopping:
            now = time.monotonic()
            for place in places:
                if place.restart_at is not None and now >= place.restart_at:
                    self._start(place, sock)
            if all(place.given_up for place in places):
                logger.error("no worker could start; the server stops")
                return 1
            sentinels = [p.process.sentinel for p in places if p.process is not None]
            waits = [p.restart_at - now for p in places if p.restart_at is not None]
            wait(sentinels, timeout=max(0.0, min([_POLL, *waits])))
            for place in places:
                if place.process is not None and not place.process.is_alive():
                    self._buried(place)
        return 0

    def _start(self, place: _Place, sock: socket.socket) -> None:
        from bentolite.server.runner import worker_main

        create_record(place.record, self._slots())
        process = self._context.Process(
            target=worker_main,
            args=(self.settings_json, self.options, sock, str(place.record)),
            name=f"bentolite-worker-{place.index}",
        )
        process.start()
        place.process = process
        place.restart_at = None

    def _slots(self) -> int:
        from bentolite.server.runner import ServeSettings

        return ServeSettings.from_json(self.settings_json).limits.max_concurrency

    def _buried(self, place: _Place) -> None:
        """A worker's process ended: say what it was doing, and decide on its place."""
        process = place.process
        assert process is not None
        process.join()
        place.process = None
        _forget_metrics(process.pid)
        if self._stopping:
            return
        how = _how_it_ended(process.exitcode)
        serving, in_flight = read_record(place.record)
        if serving:
            place.failures = 0
            place.restart_at = time.monotonic()
            if in_flight:
                doing = ", ".join(f"API {api!r} request {request_id}" for api, request_id in in_flight)
                logger.error("worker [%s] %s while answering %s; starting another", process.pid, how, doing)
            else:
                logger.error("worker [%s] %s with no request in flight; starting another", process.pid, how)
            return
        place.failures += 1
        if place.failures >= MAX_START_FAILURES:
            place.given_up = True
            logger.error(
                "worker [%s] %s before serving, %d times in a row; not starting it again",
                process.pid,
                how,
                place.failures,
            )
            return
        pause = FIRST_RESTART_PAUSE * 2 ** (place.failures - 1)
        place.restart_at = time.monotonic() + pause
        logger.error("worker [%s] %s before serving; starting another in %g s", process.pid, how, pause)

    def _drain(self, places: list[_Place]) -> None:
        running = [p.process for p in places if p.process is not None and p.process.is_alive()]
        for process in running:
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error(
                    "worker [%s] did not stop within %g s; killing it", process.pid, self.drain_seconds
                )
                process.kill()
                process.join()
            _forget_metrics(process.pid)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with status {exitcode}"


def _forget_metrics(pid: int | None) -> None:
    """A dead worker's live gauges must not count in /metrics any more."""
    from bentolite.server.metrics import MULTIPROC_ENV

    if pid is not None and os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def load_failure_exit(exc: BaseException) -> int:
    """The exit status of a worker whose service cannot load: logged in one line."""
    if isinstance(exc, BentoliteError):
        logger.error("worker [%d] cannot load the service: %s", os.getpid(), exc.message)
    else:
        logger.error("worker [%d] cannot load the service", os.getpid(), exc_info=exc)
    return 3
