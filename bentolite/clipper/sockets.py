"""The ZeroMQ plumbing of the Clipper runtime: whole messages in and out, and a wake-up.

* :func:`receive_message`: the next message's frames, received without copying them;
* :func:`send_message`: a message sent frame by frame, never blocking;
* :class:`Waker`: a socket pair whose read end a poll watches, so that any thread (or a signal
  handler) can interrupt the socket loop's poll.

Measured on pyzmq 27 with hundreds of frames per message: ``recv(copy=False)`` per frame costs
about half of ``recv_multipart()``, and one ``send()`` per frame a third of ``send_multipart()``.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import zmq

# Logged under the runtime's name: these lines belong to the container's log.
logger = logging.getLogger("bentolite.clipper.runtime")


# libzmq's values (zmq.h), the same on every platform
_EVENTS, _POLLIN, _NOBLOCK, _SNDMORE = 15, 1, 1, 2


def receive_message(sock: zmq.Socket) -> list[Any] | None:
    """The frames (pyzmq ``Frame`` objects) of the next waiting message, or None if none waits."""
    # Asking the socket whether a message waits is cheaper than a recv raising zmq.Again. The
    # flags are plain ints: operators on pyzmq's enum flags run Python code.
    if not sock.getsockopt(_EVENTS) & _POLLIN:
        return None
    frame = sock.recv(_NOBLOCK, copy=False)
    # The parts of a message arrive together: once the first is here, all are.
    frames = [frame]
    while frame.more:
        frame = sock.recv(copy=False)
        frames.append(frame)
    return frames


def send_message(sock: zmq.Socket, frames: list[bytes]) -> None:
    """Queue ``frames`` as one message; a full queue drops it with a warning."""
    import zmq

    more, last = _NOBLOCK | _SNDMORE, _NOBLOCK
    send = sock.send
    try:
        for frame in frames[:-1]:
            send(frame, more)
        send(frames[-1], last)
    except zmq.Again:
        # Only possible when the frontend has been unreachable long enough to fill the
        # outgoing queue, and then at the first frame (ZeroMQ queues a message whole or not at
        # all); the silence timeout will start a new session.
        logger.warning("frontend unreachable; dropped an outgoing message")


class Waker:
    """A socket pair: :meth:`wake` from anywhere makes a poll on :attr:`fileno` return."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._closed = False

    def fileno(self) -> int:
        return self._read.fileno()

    def wake(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._write.send(b"\0")
            except BlockingIOError:
                pass  # the buffer is full, so a wake-up is already pending

    def drain(self) -> None:
        """Consume the pending wake-ups (call when the poll reported :attr:`fileno`)."""
        try:
            while self._read.recv(4096):
                pass
        except BlockingIOError:
            return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._read.close()
            self._write.close()
