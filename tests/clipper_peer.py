"""A stand-in for the RPC side of Clipper's query frontend, exact to the byte.

:class:`ClipperPeer` binds a ZeroMQ ROUTER on a loopback port and treats model containers the way
Clipper's C++ ``RPCService`` does:

* a heartbeat from an unknown routing id is answered with heartbeat type 1 (send metadata), from
  a registered one with type 0 (keep-alive);
* a new-container message registers the routing id only if it has exactly the six frames of
  RPC v3, with the version frame equal to 3; anything else is recorded as a violation and the
  container stays unregistered;
* prediction batches go out with a global u32 ``msg_id`` counter (from 0, per frontend process),
  one batch in flight per container: the next is sent only after the previous answer;
* answers are checked frame by frame (frame count, header layout, u64 header-size frame, one
  output per input, ``msg_id`` echo); answers from unregistered ids are read and discarded;
* a registered container silent for longer than ``silence_timeout`` is dropped.

Unlike the real frontend, which keeps going on a malformed message, the peer records every
protocol breach in :attr:`ClipperPeer.violations` and fails the affected ``predict`` call with
:class:`ProtocolViolation`, so tests see exactly what was wrong.

Usage::

    peer = ClipperPeer(port=0)            # a free port; peer.port tells which
    reg = peer.wait_for_registration(10)
    outputs = peer.predict([b"..."], InputType.BYTES)
    peer.restart()                         # close and rebind the same port
    peer.close()

The ROUTER socket belongs to one background thread; the methods above talk to it through a
command queue, so they may be called from any thread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import zmq

from bentolite.clipper.parsing import parse_container_message
from bentolite.clipper.protocol import (
    ContainerMetadata,
    Heartbeat,
    HeartbeatType,
    InputType,
    PredictionResponse,
    ProtocolError,
    build_heartbeat_reply,
    build_prediction_request,
)


class ProtocolViolation(AssertionError):
    """A container broke Clipper's RPC v3 protocol."""


class ContainerGone(RuntimeError):
    """The container a request was meant for was dropped, or the peer restarted or closed."""


@dataclass(frozen=True)
class Registration:
    """One accepted new-container message."""

    routing_id: bytes
    model_name: str
    model_version: str
    input_type: InputType
    #: Clipper's ``zmq_connection_id``: +1 per registration in this peer's life
    connection_id: int
    #: Clipper's per-model replica id: +1 per registration of the same name and version
    replica_id: int
    at: float


@dataclass(frozen=True)
class Violation:
    routing_id: bytes
    message: str
    frames: tuple[bytes, ...]

    def __str__(self) -> str:
        sizes = [len(f) for f in self.frames]
        return f"{self.routing_id.hex()}: {self.message} (frame sizes {sizes})"


@dataclass(frozen=True)
class Event:
    """Something the peer saw or did; ``kind`` is one of :data:`EVENT_KINDS`."""

    at: float
    kind: str
    routing_id: bytes


EVENT_KINDS = (
    "heartbeat",  # heartbeat from a registered container, answered with keep-alive
    "metadata-request",  # heartbeat from an unknown id, answered with type 1
    "registered",
    "duplicate-metadata",  # new-container message from an already registered id (ignored)
    "request",  # prediction batch sent
    "response",  # well-formed answer received
    "discarded",  # answer from an unregistered id, read and dropped
    "dropped",  # registered container silent for too long
)


@dataclass
class _Request:
    inputs: list[bytes]
    input_type: InputType
    routing_id: bytes
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    msg_id: int | None = None


@dataclass
class _Container:
    registration: Registration
    last_seen: float
    waiting: collections.deque = field(default_factory=collections.deque)
    inflight: _Request | None = None


class ClipperPeer:
    """The RPC side of a Clipper query frontend, for tests."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        silence_timeout: float = 30.0,
        check_interval: float | None = None,
    ) -> None:
        self.host = host
        self.silence_timeout = silence_timeout
        self.check_interval = check_interval or min(10.0, silence_timeout / 3)
        self._context = zmq.Context()
        self._cond = threading.Condition()
        self._commands: queue.Queue[tuple] = queue.Queue()
        self._registrations: list[Registration] = []
        self._violations: list[Violation] = []
        self._events: list[Event] = []
        self._live: dict[bytes, _Container] = {}
        self._replica_ids: collections.Counter = collections.Counter()
        self._thread: threading.Thread | None = None
        # guards _thread and the wake-up socket, used by callers' threads and replaced by restart()
        self._io_lock = threading.Lock()
        self._muted = False
        self._closed = False
        self.port = port
        self._open()

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def restart(self, down_for: float = 0.0) -> None:
        """Close the ROUTER (forgetting every container) and bind the same port again, like a
        restarted frontend process; ``down_for`` seconds pass in between."""
        self._shut(ContainerGone("the frontend restarted"))
        time.sleep(down_for)
        self._open()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._shut(ContainerGone("the frontend closed"))
        self._context.term()

    def __enter__(self) -> ClipperPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what tests ask --------------------------------------------------------------------

    @property
    def registrations(self) -> list[Registration]:
        """Every registration in this peer's life, oldest first (restarts included)."""
        with self._cond:
            return list(self._registrations)

    @property
    def violations(self) -> list[Violation]:
        with self._cond:
            return list(self._violations)

    def registered(self) -> list[Registration]:
        """The containers registered right now, oldest first."""
        with self._cond:
            return [c.registration for c in self._live.values()]

    def events(self, kind: str | None = None, routing_id: bytes | None = None) -> list[Event]:
        with self._cond:
            return [
                e
                for e in self._events
                if (kind is None or e.kind == kind) and (routing_id is None or e.routing_id == routing_id)
            ]

    def assert_no_violations(self) -> None:
        found = self.violations
        if found:
            raise ProtocolViolation("; ".join(map(str, found)))

    def wait_for_registration(self, timeout: float = 10.0, *, count: int | None = None) -> Registration:
        """Wait until a container is registered (``count``: until ``count`` registrations
        happened in total) and return the newest live one (the ``count``-th)."""

        def done() -> bool:
            if count is not None:
                return len(self._registrations) >= count
            return bool(self._live)

        with self._cond:
            if not self._cond.wait_for(done, timeout):
                seen = "; ".join(map(str, self._violations)) or "none"
                raise TimeoutError(
                    f"no container registered with {self.address} within {timeout} s "
                    f"(registrations so far: {len(self._registrations)}; violations: {seen})"
                )
            if count is not None:
                return self._registrations[count - 1]
            return list(self._live.values())[-1].registration

    def predict(
        self,
        inputs: Sequence[bytes],
        input_type: InputType,
        *,
        routing_id: bytes | None = None,
        timeout: float = 10.0,
    ) -> list[bytes]:
        """Send one batch, as the frontend does, and return the container's outputs.

        Goes to ``routing_id``, else to the newest registered container (waiting up to
        ``timeout`` for one). Raises :class:`ProtocolViolation` if the answer breaks the
        protocol, :class:`ContainerGone` if the container goes away first.
        """
        deadline = time.monotonic() + timeout
        if routing_id is None:
            routing_id = self.wait_for_registration(timeout).routing_id
        request = _Request([bytes(x) for x in inputs], InputType(input_type), routing_id)
        self._command("predict", request)
        try:
            return request.future.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"no answer from {routing_id.hex()} to msg_id {request.msg_id} within {timeout} s"
            ) from None

    def mute(self, muted: bool = True) -> None:
        """While muted the peer reads and ignores everything, like a hung frontend: nothing is
        answered, registered or counted as a sign of life."""
        self._muted = muted

    def send_raw(self, frames: Sequence[bytes], routing_id: bytes | None = None) -> None:
        """Send arbitrary frames (after the routing id) to a container, bypassing the
        one-batch-in-flight bookkeeping: for feeding containers malformed messages."""
        if routing_id is None:
            routing_id = self.wait_for_registration(5.0).routing_id
        self._command("raw", (routing_id, [bytes(f) for f in frames]))

    # --- the socket thread -----------------------------------------------------------------

    def _open(self) -> None:
        self._sock = self._context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._sock.bind(f"tcp://{self.host}:{self.port or '*'}")
                break
            except zmq.ZMQError as exc:
                # the previous ROUTER's listener is released asynchronously
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    self._sock.close()
                    raise
                time.sleep(0.05)
        endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.port = int(endpoint.rsplit(":", 1)[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._next_msg_id = 0  # a new frontend process counts from 0
        self._running = True
        thread = threading.Thread(target=self._loop, name="clipper-peer", daemon=True)
        thread.start()
        with self._io_lock:
            self._thread = thread

    def _shut(self, reason: Exception) -> None:
        self._command("stop", None)
        with self._io_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)
        self._sock.close(linger=0)
        self._wake_r.close()
        self._wake_w.close()
        with self._cond:
            for container in self._live.values():
                self._fail_all(container, reason)
            self._live.clear()
        while not self._commands.empty():
            kind, payload = self._commands.get_nowait()
            if kind == "predict":
                payload.future.set_exception(reason)

    def _command(self, kind: str, payload: object) -> None:
        with self._io_lock:
            if self._thread is None:  # closed, or in the middle of a restart
                if kind == "predict":
                    payload.future.set_exception(ContainerGone("the frontend is not running"))
                return
            self._commands.put((kind, payload))
            try:
                self._wake_w.send(b"\0")
            except BlockingIOError:
                pass  # the buffer is full, so a wake-up is already pending

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        wake_fd = self._wake_r.fileno()  # zmq.Poller reports plain sockets by descriptor
        poller.register(wake_fd, zmq.POLLIN)
        next_check = time.monotonic() + self.check_interval
        while self._running:
            wait = max(0, math.ceil((next_check - time.monotonic()) * 1000))
            events = dict(poller.poll(wait))
            if wake_fd in events:
                self._drain_wake()
                self._run_commands()
            if self._sock in events:
                while self._running:
                    try:
                        frames = self._sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if not self._muted:
                        self._on_message(frames[0], frames[1:])
            if time.monotonic() >= next_check:
                self._drop_silent()
                next_check = time.monotonic() + self.check_interval
            self._dispatch()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            return

    def _run_commands(self) -> None:
        while True:
            try:
                kind, payload = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "stop":
                self._running = False
            elif kind == "raw":
                routing_id, frames = payload
                self._sock.send_multipart([routing_id, *frames])
            else:
                with self._cond:
                    container = self._live.get(payload.routing_id)
                if container is None:
                    payload.future.set_exception(
                        ContainerGone(f"{payload.routing_id.hex()} is not registered")
                    )
                else:
                    container.waiting.append(payload)

    def _dispatch(self) -> None:
        """Send each idle container its next batch (one in flight per container)."""
        for rid, container in list(self._live.items()):
            if container.inflight is None and container.waiting:
                request = container.waiting.popleft()
                request.msg_id = self._next_msg_id
                self._next_msg_id = (self._next_msg_id + 1) % 2**32
                container.inflight = request
                frames = build_prediction_request(request.msg_id, request.input_type, request.inputs)
                self._event("request", rid)
                self._sock.send_multipart([rid, *frames])

    def _on_message(self, rid: bytes, body: list[bytes]) -> None:
        container = self._live.get(rid)
        if container is not None:
            container.last_seen = time.monotonic()
        try:
            message = parse_container_message(body)
        except ProtocolError as exc:
            self._violate(rid, str(exc), body)
            if container is not None:
                # whatever it was meant to be, the real frontend's stream is out of step now
                self._finish(container, ProtocolViolation(f"malformed message: {exc}"))
            return
        if isinstance(message, Heartbeat):
            known = container is not None
            reply = HeartbeatType.KEEP_ALIVE if known else HeartbeatType.REQUEST_CONTAINER_METADATA
            # recorded before replying, so whoever gets the reply finds the event
            self._event("heartbeat" if known else "metadata-request", rid)
            self._sock.send_multipart([rid, *build_heartbeat_reply(reply)])
        elif isinstance(message, ContainerMetadata):
            if container is not None:
                self._event("duplicate-metadata", rid)
            else:
                self._register(rid, message)
        elif container is None:
            self._event("discarded", rid)
        else:
            self._on_response(rid, container, message, body)

    def _on_response(
        self, rid: bytes, container: _Container, response: PredictionResponse, body: list[bytes]
    ) -> None:
        request = container.inflight
        if request is None:
            self._violate(rid, f"answer to msg_id {response.msg_id} with no request in flight", body)
            return
        problem = None
        if response.msg_id != request.msg_id:
            problem = f"answer echoes msg_id {response.msg_id}, expected {request.msg_id}"
        elif len(response.outputs) != len(request.inputs):
            problem = (
                f"answer to msg_id {request.msg_id} has {len(response.outputs)} outputs for "
                f"{len(request.inputs)} inputs"
            )
        if problem is not None:
            self._violate(rid, problem, body)
            self._finish(container, ProtocolViolation(problem))
            return
        self._event("response", rid)
        self._finish(container, response.outputs)

    def _finish(self, container: _Container, outcome: list[bytes] | Exception) -> None:
        request, container.inflight = container.inflight, None
        if request is None or request.future.done():
            return
        if isinstance(outcome, Exception):
            request.future.set_exception(outcome)
        else:
            request.future.set_result(outcome)

    def _register(self, rid: bytes, meta: ContainerMetadata) -> None:
        key = (meta.model_name, meta.model_version)
        now = time.monotonic()
        with self._cond:
            registration = Registration(
                routing_id=rid,
                model_name=meta.model_name,
                model_version=meta.model_version,
                input_type=meta.input_type,
                connection_id=len(self._registrations),
                replica_id=self._replica_ids[key],
                at=now,
            )
            self._replica_ids[key] += 1
            self._registrations.append(registration)
            self._live[rid] = _Container(registration, last_seen=now)
            self._events.append(Event(now, "registered", rid))
            self._cond.notify_all()

    def _drop_silent(self) -> None:
        now = time.monotonic()
        with self._cond:
            silent = [rid for rid, c in self._live.items() if now - c.last_seen > self.silence_timeout]
            for rid in silent:
                container = self._live.pop(rid)
                self._events.append(Event(now, "dropped", rid))
                self._fail_all(
                    container,
                    ContainerGone(f"{rid.hex()} was silent for over {self.silence_timeout} s"),
                )

    @staticmethod
    def _fail_all(container: _Container, reason: Exception) -> None:
        pending = [container.inflight, *container.waiting]
        container.inflight = None
        container.waiting.clear()
        for request in pending:
            if request is not None and not request.future.done():
                request.future.set_exception(reason)

    def _violate(self, rid: bytes, message: str, frames: list[bytes]) -> None:
        with self._cond:
            self._violations.append(Violation(rid, message, tuple(frames)))
            self._cond.notify_all()

    def _event(self, kind: str, rid: bytes) -> None:
        with self._cond:
            self._events.append(Event(time.monotonic(), kind, rid))


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
