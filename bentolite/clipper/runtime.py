"""Serve one prediction function as a Clipper model container (RPC v3 over ZeroMQ).

:class:`ClipperRuntime` connects a DEALER socket to the query frontend's ROUTER, registers the
model, then answers every prediction batch with exactly one output per input, in input order.
It keeps the session rules of Clipper's own Python container (heartbeat first, metadata on
request, heartbeat after ``poll_timeout`` of quiet, a new socket after ``silence_timeout`` of
silence) and differs where that container loses the replica or gives wrong answers:

* a batch whose prediction raises is predicted again input by input, so every valid input gets
  its own prediction and only the inputs that fail on their own get the JSON text
  ``{"error": "<message>", "type": "<exception class>"}``; the error is logged. A batch that
  succeeds is called exactly once;
* a batch is predicted on the thread that serves the socket (no hand-off to another thread
  per batch), while :meth:`ClipperRuntime.run`'s own thread keeps the replica alive: once a
  prediction has run for ``poll_timeout`` it sends the heartbeats the socket loop cannot, so a
  batch longer than the frontend's 30 s liveness window does not get the replica dropped;
* a malformed message from the frontend is logged and skipped;
* a session that has not heard from the frontend ``silence_timeout`` after it started is
  replaced too (a heartbeat lost before the first reply would otherwise leave it waiting);
* :meth:`ClipperRuntime.stop` (from any thread or a signal handler) closes the socket cleanly
  and makes :meth:`ClipperRuntime.run` return, even while a prediction is still running;
* a metrics port that is taken (two replicas on one host network) is logged as a warning and
  the container serves without metrics.

The inputs of a request are received straight into one buffer of their own (``sockets.py``),
a single one or large ones as zero-copy frames; the handler gets views of them, never copies.

pyzmq is imported when :meth:`ClipperRuntime.run` starts, never at import time.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bentolite.clipper.batch import BatchPredictor, Handler
from bentolite.clipper.protocol import (
    HeartbeatReply,
    HeartbeatType,
    InputType,
    PredictionRequest,
    ProtocolError,
    build_container_metadata,
    build_heartbeat,
    response_frames,
)
from bentolite.clipper.resolve import resolve_frontend
from bentolite.clipper.sockets import MessageReader, Waker, send_message
from bentolite.exceptions import ConfigError, InferenceError, InvalidArgument

if TYPE_CHECKING:
    import zmq

    from bentolite.clipper.metrics import ContainerMetrics

logger = logging.getLogger(__name__)

DEFAULT_READY_FILE = "/model_is_ready.check"
DEFAULT_METRICS_PORT = 1390

_HEARTBEAT = build_heartbeat()


class _Closed(Exception):
    """The socket was closed by :meth:`ClipperRuntime.run` while a prediction ran."""


class ClipperRuntime:
    """A Clipper model container serving ``handler``.

    ``handler`` gets the input frames of one batch (bytes-like, see
    :data:`~bentolite.clipper.batch.Handler`, laid out the way ``input_type`` says) and returns
    one string (or bytes) per input.
    ``run()`` blocks until ``stop()``; a runtime runs once.
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
        self._predictor = BatchPredictor(handler, self.input_type)

        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _started and _waker
        self._started = False
        self._waker: Waker | None = None
        self._metrics: ContainerMetrics | None = None
        # The serving thread holds _sock_lock whenever it is not inside the handler; run()'s
        # thread takes it only while a prediction runs (to heartbeat) or to close the socket.
        self._sock_lock = threading.Lock()
        self._sock: zmq.Socket | None = None
        #: monotonic time the running prediction started, None between predictions
        self._busy_since: float | None = None
        #: monotonic time of the last heartbeat sent, by either thread
        self._last_beat = 0.0
        self._fatal: BaseException | None = None
        self._error: BaseException | None = None

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
            self._waker = Waker()
        context = zmq.Context()
        ready: Path | None = None
        server: threading.Thread | None = None
        try:
            self._start_metrics()
            ready = self._write_ready_file()
            server = threading.Thread(target=self._serve, args=(context,), name="clipper-serve", daemon=True)
            server.start()
            self._keep_alive()
        finally:
            self.stop()
            if server is not None:
                self._release(server)
            context.term()
            if ready is not None:
                ready.unlink(missing_ok=True)
            if self._metrics is not None:
                self._metrics.close()
            with self._lock:
                self._waker.close()
            logger.info("Clipper runtime stopped")
        if self._fatal is not None:
            raise InferenceError(
                f"the prediction function raised {type(self._fatal).__name__}, which ends the "
                "Clipper runtime; raise an Exception subclass to report a failed prediction"
            ) from self._fatal
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Make :meth:`run` close its socket and return. Safe from any thread or signal handler."""
        self._stop.set()
        with self._lock:
            waker = self._waker
        if waker is not None:
            waker.wake()

    @property
    def metrics_server_port(self) -> int | None:
        """The port metrics are served on (useful with ``metrics_port=0``), once running."""
        return self._metrics.port if self._metrics is not None else None

    # --- run()'s thread: liveness while a prediction runs, and the end ----------------------

    def _keep_alive(self) -> None:
        """Until stop(): heartbeat for the serving thread while it is inside a long prediction."""
        while not self._stop.is_set():
            busy = self._busy_since
            if busy is None:
                wait = self.poll_timeout
            else:
                due = max(busy, self._last_beat) + self.poll_timeout
                wait = due - time.monotonic()
                if wait <= 0:
                    with self._sock_lock:
                        # re-checked: the prediction may have ended while the lock was waited for
                        if self._busy_since is not None and self._sock is not None:
                            send_message(self._sock, _HEARTBEAT)
                            self._last_beat = time.monotonic()
                    continue
            self._stop.wait(wait)

    def _release(self, server: threading.Thread) -> None:
        """Wait for the serving thread to close its socket, or close it for a stuck prediction."""
        while server.is_alive():
            if self._busy_since is not None:
                # The prediction may run for a long time still; its late answer is dropped.
                with self._sock_lock:
                    if self._sock is not None:
                        self._sock.close(linger=0)
                        self._sock = None
                if server.is_alive():
                    logger.warning("stopped while a prediction was running; its answer is dropped")
                return
            server.join(0.05)

    # --- the serving thread: the socket loop ------------------------------------------------

    def _serve(self, context: zmq.Context) -> None:
        self._sock_lock.acquire()
        try:
            while not self._stop.is_set():
                ip = self._resolve_host_unlocked()
                if ip is not None and not self._stop.is_set():
                    self._serve_session(context, ip)
        except _Closed:
            pass
        except BaseException as exc:  # handed to run(), which re-raises it
            if self._fatal is None:
                self._error = exc
        finally:
            self._sock_lock.release()
            self.stop()

    def _resolve_host_unlocked(self) -> str | None:
        # Resolving may wait for a long time; run()'s thread must be able to close meanwhile.
        self._sock_lock.release()
        try:
            return resolve_frontend(self.host, self._stop)
        finally:
            self._sock_lock.acquire()

    def _serve_session(self, context: zmq.Context, ip: str) -> None:
        """One DEALER socket from connect to close; returns on silence or stop()."""
        import zmq

        self.sessions += 1
        session = self.sessions
        sock = self._sock = context.socket(zmq.DEALER)
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
            reader = MessageReader(sock)
            assert self._waker is not None
            waker = self._waker
            # zmq_poll itself, not a Poller: the same call without Poller.poll's Python in front
            polled = [(sock, zmq.POLLIN), (waker.fileno(), zmq.POLLIN)]
            poll, monotonic, stopped = zmq.zmq_poll, time.monotonic, self._stop.is_set
            poll_timeout, silence_timeout = self.poll_timeout, self.silence_timeout
            send_message(sock, _HEARTBEAT)
            # The session start counts as activity, so a session that never hears back is
            # replaced after silence_timeout too.
            last_inbound = self._last_beat = monotonic()
            heard = False
            while not stopped():
                deadline = last_inbound + silence_timeout
                if heard:
                    deadline = min(deadline, max(last_inbound, self._last_beat) + poll_timeout)
                received = False
                for ready, _ in poll(polled, max(0, math.ceil((deadline - monotonic()) * 1000))):
                    if ready is sock:
                        self._receive_one(reader, session)
                        received = True
                    else:
                        waker.drain()
                now = monotonic()
                if received:  # so neither the silence timeout nor a heartbeat can be due
                    last_inbound = now
                    heard = True
                    continue
                if now - last_inbound >= silence_timeout:
                    logger.warning(
                        "session %d: nothing heard from the frontend for %.1f s; reconnecting",
                        session,
                        now - last_inbound,
                    )
                    return
                if heard and now - max(last_inbound, self._last_beat) >= poll_timeout:
                    send_message(sock, _HEARTBEAT)
                    self._last_beat = now
        finally:
            if self._sock is sock:
                self._sock = None
                sock.close(linger=0)

    def _receive_one(self, reader: MessageReader, session: int) -> None:
        """Handle the message waiting on the socket. One per poll: a second message waiting is
        seen by the next poll, which costs no more than asking the socket would."""
        metrics = self._metrics
        polled = time.perf_counter() if metrics is not None else 0.0
        try:
            message = reader.receive()
        except ProtocolError as exc:
            logger.warning("session %d: skipped a malformed message from the frontend: %s", session, exc)
            return
        if message is None:
            return
        if isinstance(message, HeartbeatReply):
            if message.heartbeat_type is HeartbeatType.REQUEST_CONTAINER_METADATA:
                logger.info("session %d: frontend asked for metadata; registering", session)
                send_message(
                    reader.sock,
                    build_container_metadata(self.model_name, self.model_version, self.input_type),
                )
            return
        if metrics is not None:
            received = time.perf_counter()
            metrics.recv_time.observe((received - polled) * 1000)
            metrics.parse_time.observe((time.perf_counter() - received) * 1000)
        payloads = self._predict_unlocked(message)
        if self._sock is not reader.sock:
            raise _Closed  # run() closed the socket while the prediction ran
        send_message(reader.sock, response_frames(message.msg_id, payloads))
        if metrics is not None:
            metrics.pred_total.inc()
            metrics.end_to_end.observe((time.perf_counter() - polled) * 1000)

    # --- predictions ---------------------------------------------------------------------------

    def _predict_unlocked(self, request: PredictionRequest) -> list[bytes]:
        """Predict with the socket lock released, so run()'s thread can heartbeat meanwhile."""
        self._busy_since = time.monotonic()
        self._sock_lock.release()
        try:
            return self._predictor.predict(request, self._metrics)
        except BaseException as exc:
            # predict() handles every Exception; what lands here (SystemExit, KeyboardInterrupt
            # raised by the prediction function) stops the runtime, and run() reports it.
            self._fatal = exc
            raise _Closed from exc
        finally:
            self._sock_lock.acquire()
            self._busy_since = None

    # --- helpers ---------------------------------------------------------------------------

    def _start_metrics(self) -> None:
        if self.metrics_port is None:
            return
        from bentolite.clipper.metrics import ContainerMetrics

        try:
            self._metrics = ContainerMetrics(self.metrics_port, self.metrics_addr)
        except ConfigError as exc:
            # Two replicas on one host network share the port: serving matters more than metrics.
            logger.warning("%s; serving without metrics", exc.message)
            return
        logger.info("serving metrics on %s:%d", self.metrics_addr, self._metrics.port)

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
