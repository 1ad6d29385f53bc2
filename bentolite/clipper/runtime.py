"""Serve one prediction function as a Clipper model container (RPC v3 over ZeroMQ).

:class:`ClipperRuntime` connects a DEALER socket to the query frontend's ROUTER, registers the
model, then answers every prediction batch with exactly one output per input, in input order.
It keeps the session rules of Clipper's own Python container (heartbeat first, metadata on
request, heartbeat after ``poll_timeout`` of quiet, a new socket after ``silence_timeout`` of
silence) and differs where that container loses the replica:

* a prediction that raises does not end the process: each input of the batch gets the JSON text
  ``{"error": "<message>", "type": "<exception class>"}`` and the error is logged;
* predictions run in a worker thread while the socket loop keeps heartbeating, so a batch that
  takes longer than the frontend's 30 s liveness window does not get the replica dropped;
* a malformed message from the frontend is logged and skipped;
* a session that has not heard from the frontend ``silence_timeout`` after it started is
  replaced too (a heartbeat lost before the first reply would otherwise leave it waiting);
* :meth:`ClipperRuntime.stop` (from any thread or a signal handler) closes the socket cleanly
  and makes :meth:`ClipperRuntime.run` return.

pyzmq is imported when :meth:`ClipperRuntime.run` starts, never at import time.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from bentolite.clipper.protocol import (
    HeartbeatReply,
    HeartbeatType,
    InputType,
    PredictionRequest,
    ProtocolError,
    build_container_metadata,
    build_heartbeat,
    build_prediction_response,
    parse_frontend_message,
)
from bentolite.exceptions import BadInput, ConfigError, InferenceError, InvalidArgument

if TYPE_CHECKING:
    import zmq

logger = logging.getLogger(__name__)

DEFAULT_READY_FILE = "/model_is_ready.check"
DEFAULT_METRICS_PORT = 1390
#: seconds between attempts to resolve a frontend host name that does not resolve (yet)
RESOLVE_RETRY = 0.5

#: what a runtime serves: the raw input frames of one batch -> one output string per input
Handler = Callable[[list[bytes]], Sequence[Union[str, bytes]]]

# Clipper's bucket boundaries for these metrics, in milliseconds.
_SLOW_BUCKETS = (5, 10, 20, 35, 50, 75, 100, 150, 200, 250, 300, 400, 500)
_FAST_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class _Job:
    """One prediction request on its way through the worker thread."""

    #: the runtime's epoch when the request arrived (see ``ClipperRuntime._epoch``)
    epoch: int
    request: PredictionRequest
    #: perf_counter() when the poll that delivered it returned
    received: float
    outputs: Sequence[str | bytes] = field(default_factory=list)


class ClipperRuntime:
    """A Clipper model container serving ``handler``.

    ``handler`` gets the raw input frames of one batch (``list[bytes]``, decoded the way
    ``input_type`` says) and returns one string (or bytes) per input. ``run()`` blocks until
    ``stop()``; a runtime runs once.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        model_name: str,
        model_version: str,
        input_type: InputType | str,
        host: str = "127.0.0.1",
        port: int = 7000,
        ready_file: str | os.PathLike[str] | None = DEFAULT_READY_FILE,
        poll_timeout: float = 5.0,
        silence_timeout: float = 30.0,
        metrics_port: int | None = None,
        metrics_addr: str = "0.0.0.0",
    ) -> None:
        if not callable(handler):
            raise InvalidArgument(f"handler must be callable, got {type(handler).__name__}")
        for label, value in (("model_name", model_name), ("model_version", model_version)):
            if not isinstance(value, str) or not value:
                raise InvalidArgument(f"{label} must be a non-empty string, got {value!r}")
        if not 0 < port < 65536:
            raise InvalidArgument(f"port must be in 1..65535, got {port}")
        if not 0 < poll_timeout < silence_timeout:
            raise InvalidArgument(
                f"need 0 < poll_timeout < silence_timeout, got {poll_timeout} and {silence_timeout}"
            )
        self.handler = handler
        self.model_name = model_name
        self.model_version = model_version
        try:
            self.input_type = (
                input_type if isinstance(input_type, InputType) else InputType.from_name(input_type)
            )
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        self.host = host
        self.port = port
        self.ready_file = Path(ready_file) if ready_file else None
        self.poll_timeout = poll_timeout
        self.silence_timeout = silence_timeout
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        #: sessions started so far; each one is a fresh socket and a new registration
        self.sessions = 0

        self._stop = threading.Event()
        # guards the wake-up socket pair, which stop() and the worker may touch after run() ends
        self._lock = threading.RLock()
        self._started = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._done: collections.deque[_Job] = collections.deque()
        self._metrics: _Metrics | None = None
        # Bumped whenever the frontend may have forgotten the requests it sent so far: at each
        # new session and at each (re-)registration. An answer computed for an older epoch is
        # dropped: after a frontend restart msg_ids start again at 0, so a late answer would
        # be taken for the answer to a new request.
        self._epoch = 0
        self._fatal: BaseException | None = None

    # --- public ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop` is called. Creates the ready file first, removes it last.

        Raises :class:`~bentolite.exceptions.InferenceError` if the prediction function raised
        a ``BaseException`` that is not an ``Exception`` (``SystemExit``), which stops serving.
        """
        import zmq

        with self._lock:
            if self._started:
                raise RuntimeError("a ClipperRuntime runs once; create a new one")
            self._started = True
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
        context = zmq.Context()
        ready: Path | None = None
        try:
            if self.metrics_port is not None:
                self._metrics = _Metrics(self.metrics_port, self.metrics_addr)
                logger.info("serving metrics on %s:%d", self.metrics_addr, self._metrics.port)
            ready = self._write_ready_file()
            threading.Thread(target=self._work, name="clipper-predict", daemon=True).start()
            while not self._stop.is_set():
                ip = self._resolve_host()
                if ip is not None:
                    self._serve_session(context, ip)
        finally:
            # The worker may still be inside the user's function; it is a daemon thread and its
            # late answer is discarded, so it is not waited for.
            self._jobs.put(None)
            context.term()
            if ready is not None:
                ready.unlink(missing_ok=True)
            if self._metrics is not None:
                self._metrics.close()
            with self._lock:
                for sock in (self._wake_r, self._wake_w):
                    if sock is not None:
                        sock.close()
                self._wake_r = self._wake_w = None
            logger.info("Clipper runtime stopped")
        if self._fatal is not None:
            raise InferenceError(
                f"the prediction function raised {type(self._fatal).__name__}, which ends the "
                "Clipper runtime; raise an Exception subclass to report a failed prediction"
            ) from self._fatal

    def stop(self) -> None:
        """Make :meth:`run` close its socket and return. Safe from any thread or signal handler."""
        self._stop.set()
        self._wake()

    @property
    def metrics_server_port(self) -> int | None:
        """The port metrics are served on (useful with ``metrics_port=0``), once running."""
        return self._metrics.port if self._metrics is not None else None

    # --- the socket loop -------------------------------------------------------------------

    def _resolve_host(self) -> str | None:
        # Resolved per session, as the frontend's address may change between sessions. A name
        # that does not resolve yet (a Kubernetes service still being created) is retried every
        # RESOLVE_RETRY seconds; it is logged once, and once more when it resolves.
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                ip = socket.gethostbyname(self.host)
            except OSError as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.warning(
                        "cannot resolve Clipper host %r (%s); retrying every %.1f s",
                        self.host,
                        exc,
                        RESOLVE_RETRY,
                    )
                self._stop.wait(RESOLVE_RETRY)
                continue
            if failing_since is not None:
                logger.info(
                    "resolved Clipper host %r to %s after %.1f s",
                    self.host,
                    ip,
                    time.monotonic() - failing_since,
                )
            return ip
        return None

    def _serve_session(self, context: zmq.Context, ip: str) -> None:
        """One DEALER socket from connect to close; returns on silence or stop()."""
        import zmq

        self.sessions += 1
        self._epoch += 1
        session = self.sessions
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(f"tcp://{ip}:{self.port}")
            logger.info(
                "session %d: connecting to tcp://%s:%d as %s:%s (%s inputs)",
                session,
                ip,
                self.port,
                self.model_name,
                self.model_version,
                self.input_type.label,
            )
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            # zmq.Poller reports plain sockets by file descriptor
            wake_fd = self._wake_r.fileno()
            poller.register(wake_fd, zmq.POLLIN)
            _send(sock, build_heartbeat())
            # The session start counts as activity, so a session that never hears back is
            # replaced after silence_timeout too.
            last_inbound = last_beat = time.monotonic()
            heard = False
            while not self._stop.is_set():
                deadline = last_inbound + self.silence_timeout
                if heard:
                    deadline = min(deadline, max(last_inbound, last_beat) + self.poll_timeout)
                wait_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
                events = dict(poller.poll(wait_ms))
                if wake_fd in events:
                    self._drain_wake()
                    self._send_answers(sock)
                if sock in events:
                    self._receive_all(sock, session)
                    last_inbound = time.monotonic()
                    heard = True
                now = time.monotonic()
                if now - last_inbound >= self.silence_timeout:
                    logger.warning(
                        "session %d: nothing heard from the frontend for %.1f s; reconnecting",
                        session,
                        now - last_inbound,
                    )
                    return
                if heard and now - max(last_inbound, last_beat) >= self.poll_timeout:
                    _send(sock, build_heartbeat())
                    last_beat = now
        finally:
            sock.close(linger=0)

    def _receive_all(self, sock: zmq.Socket, session: int) -> None:
        import zmq

        while True:
            polled = time.perf_counter()
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            received = time.perf_counter()
            try:
                message = parse_frontend_message(frames)
            except ProtocolError as exc:
                logger.warning(
                    "session %d: skipped a malformed message from the frontend: %s",
                    session,
                    exc,
                )
                continue
            if isinstance(message, HeartbeatReply):
                if message.heartbeat_type is HeartbeatType.REQUEST_CONTAINER_METADATA:
                    logger.info("session %d: frontend asked for metadata; registering", session)
                    self._epoch += 1
                    _send(
                        sock,
                        build_container_metadata(self.model_name, self.model_version, self.input_type),
                    )
                continue
            if self._metrics is not None:
                self._metrics.recv_time.observe((received - polled) * 1000)
                self._metrics.parse_time.observe((time.perf_counter() - received) * 1000)
            self._jobs.put(_Job(self._epoch, message, polled))

    def _send_answers(self, sock: zmq.Socket) -> None:
        while self._done:
            job = self._done.popleft()
            if job.epoch != self._epoch:
                logger.warning(
                    "dropped the answer to request %d: the frontend reconnected or restarted "
                    "while it was computed",
                    job.request.msg_id,
                )
                continue
            _send(sock, build_prediction_response(job.request.msg_id, job.outputs))
            if self._metrics is not None:
                self._metrics.pred_total.inc()
                self._metrics.end_to_end.observe((time.perf_counter() - job.received) * 1000)

    # --- the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                job.outputs = self._predict(job.request)
                self._done.append(job)
                self._wake()
        except BaseException as exc:
            # _predict handles every Exception; what lands here (SystemExit, KeyboardInterrupt
            # raised by the prediction function) ends this thread, and without it nothing would
            # ever be answered again, so the runtime stops and run() reports it.
            self._fatal = exc
            self.stop()

    def _predict(self, request: PredictionRequest) -> Sequence[str | bytes]:
        n = len(request.inputs)
        if request.input_type is not self.input_type:
            error = BadInput(
                f"the frontend sent {request.input_type.label} inputs; this container takes "
                f"{self.input_type.label}"
            )
            logger.error("request %d: %s", request.msg_id, error)
            return _error_outputs(error, n)
        if n == 0:
            return []
        started = time.perf_counter()
        try:
            outputs = self.handler(request.inputs)
            _check_outputs(outputs, n)
        except Exception as exc:  # the user's code failing must not take the replica down
            logger.exception("request %d: prediction on %d input(s) failed", request.msg_id, n)
            return _error_outputs(exc, n)
        finally:
            if self._metrics is not None:
                self._metrics.handle_time.observe((time.perf_counter() - started) * 1000)
        return outputs

    # --- helpers ---------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._lock:
            if self._wake_w is None:
                return
            try:
                self._wake_w.send(b"\0")
            except BlockingIOError:
                pass  # the buffer is full, so a wake-up is already pending

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            return

    def _write_ready_file(self) -> Path | None:
        if self.ready_file is None:
            return None
        try:
            self.ready_file.write_text("READY\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot create the ready file {self.ready_file}: {exc.strerror or exc}; "
                "choose a writable path"
            ) from exc
        return self.ready_file


def _send(sock: zmq.Socket, frames: list[bytes]) -> None:
    import zmq

    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        # Only possible when the frontend has been unreachable long enough to fill the
        # outgoing queue; the silence timeout will start a new session.
        logger.warning("frontend unreachable; dropped an outgoing message")


def _check_outputs(outputs: Any, n: int) -> None:
    if not isinstance(outputs, (list, tuple)):
        raise InferenceError(
            f"the prediction handler returned {type(outputs).__name__}; expected a list of {n} strings"
        )
    if len(outputs) != n:
        raise InferenceError(f"the prediction handler returned {len(outputs)} output(s) for {n} input(s)")
    for i, output in enumerate(outputs):
        if not isinstance(output, (str, bytes)):
            raise InferenceError(
                f"output {i} of the prediction handler is {type(output).__name__}; expected str or bytes"
            )


def _error_outputs(exc: BaseException, n: int) -> list[str]:
    text = json.dumps({"error": str(exc), "type": type(exc).__name__})
    return [text] * n


class _Metrics:
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
            "Milliseconds to receive a request's frames.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        self.parse_time = Histogram(
            "clipper_mc_parse_time_ms",
            "Milliseconds to parse a request's frames.",
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
