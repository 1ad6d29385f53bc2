"""The ZeroMQ plumbing of the Clipper runtime: whole messages in and out, and a wake-up.

* :class:`MessageReader`: the frontend's next message, parsed; a prediction request's inputs
  are received into one buffer when they are small (a single one is its frame's buffer);
* :func:`send_message`: a message sent frame by frame, never blocking;
* :class:`Waker`: a socket pair whose read end a poll watches, so that any thread (or a signal
  handler) can interrupt the socket loop's poll.

Per frame, measured on pyzmq 27 (hundreds of frames per message): ``recv(copy=False)`` costs
about 600 ns, as it makes a ``Frame`` object; ``recv_into`` a slice of one buffer about 220 ns.
Sending costs about 150 ns a frame through the backend socket's ``send`` and 300 ns through
pyzmq's ``Socket.send``, which is a Python function in front of it; ``send_multipart`` costs
1,200 ns. Asking libzmq whether more frames follow (``getsockopt(RCVMORE)``) costs 700 ns (pyzmq
looks the option up in its ``SocketOption`` enum, in Python), so the reader asks once per message,
not once per frame, and not at all for a request of one input, whose frame object says so.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, NoReturn

from bentolite.clipper.parsing import parse_frontend_message, request_head
from bentolite.clipper.protocol import (
    CONTENT_FRAME,
    HEARTBEAT_FRAME,
    REQUEST_PREFIX_FRAMES,
    VERSION_FRAME,
    FrontendMessage,
    InputFrames,
    PredictionRequest,
    ProtocolError,
)

if TYPE_CHECKING:
    import zmq

# Logged under the runtime's name: these lines belong to the container's log.
logger = logging.getLogger("bentolite.clipper.runtime")


# libzmq's values (zmq.h), the same on every platform
_NOBLOCK, _SNDMORE, _RCVMORE = 1, 2, 13

#: inputs of at most this many bytes each are received into one buffer; a batch holding a larger
#: one gets a zero-copy frame per input, as copying it would cost more than the frame object
INTO_LIMIT = 16384
#: the largest buffer allocated from what a header declares, before any input has arrived (4,096
#: inputs of INTO_LIMIT bytes); a batch declaring more is received frame by frame, so what is
#: allocated is only what actually arrives
INTO_TOTAL_LIMIT = 64 * 1024 * 1024


class MessageReader:
    """Reads the frontend's messages from one DEALER socket.

    A prediction request's inputs are received straight into one buffer (its
    :class:`~bentolite.clipper.protocol.InputFrames` are views of it), sized from the input
    header; a single input's buffer is its zero-copy frame's. Every frame is still checked: a
    message with fewer or more frames than its header declares, or an input of another size,
    raises :class:`ProtocolError` and is consumed whole.
    """

    def __init__(self, sock: zmq.Socket) -> None:
        import zmq

        self.sock = sock
        self._recv = sock.recv
        self._recv_into = sock.recv_into
        #: the next frame as a zero-copy frame, without waiting
        self._recv_frame = functools.partial(sock.recv, _NOBLOCK, copy=False)
        self._again = zmq.Again
        #: the delimiter frame of the next message, already received while reading a short one
        self._next_started = False

    def receive(self) -> FrontendMessage | None:
        """The next message, or None if none waits; ProtocolError if it is malformed.

        Call it once the socket polled readable: it does not ask first, as asking libzmq costs
        about what a poll does.
        """
        recv = self._recv
        if self._next_started:
            self._next_started = False
        else:
            try:
                first = recv(_NOBLOCK)
            except self._again:
                return None
            if first:  # not a delimiter, so not a message of the frontend's
                return self._parse_rest([first])  # raises
        # The fields are received as bytes, without asking whether more frames follow: no field
        # of a well-formed message is empty, so an empty frame is the next message's delimiter.
        # Each is received only while the fields before it are a prediction request's, so any
        # other message is received here no further than its type frame.
        version = kind = msg_id = request_type = header_size = header = None
        try:
            complete = (
                (version := recv(_NOBLOCK))
                and (kind := recv(_NOBLOCK)) == CONTENT_FRAME
                and version == VERSION_FRAME
                and (msg_id := recv(_NOBLOCK))
                and (request_type := recv(_NOBLOCK))
                and (header_size := recv(_NOBLOCK))
                and (header := recv(_NOBLOCK))
            )
        except self._again:  # the message ended among its fields
            complete = False
        if not complete:
            return self._receive_other([version, kind, msg_id, request_type, header_size, header])
        try:
            msg_id_value, input_type, sizes = request_head(msg_id, request_type, header_size, header)  # type: ignore[arg-type]
        except ProtocolError:
            self._discard_rest()
            raise
        total = sum(sizes)
        if sizes and max(sizes) <= INTO_LIMIT and total <= INTO_TOTAL_LIMIT:
            return PredictionRequest(msg_id_value, input_type, self._receive_into(sizes, total))
        # no inputs, or large ones: zero-copy frames, counted and checked by the parser
        return self._parse_rest([b"", version, kind, msg_id, request_type, header_size, header])

    def _receive_other(self, fields: list[bytes | None]) -> FrontendMessage:
        """The rest of a message whose fields (frames 1-6, None where not received) are not a
        prediction request's: a heartbeat reply, or a malformed message."""
        frames = [b""]
        for field in fields:
            if field is None:  # the message ended, or the fields before this one were no request's
                break
            if not field:  # the delimiter of the next message
                self._next_started = True
                break
            frames.append(field)
        if len(frames) < 3:
            return parse_frontend_message(frames)  # raises: too few frames
        kind = frames[2]
        if frames[1] != VERSION_FRAME or kind not in (HEARTBEAT_FRAME, CONTENT_FRAME):
            return self._parse_rest(frames)  # raises, naming the field
        # a heartbeat reply, or (raises) a request that ended among its fields
        if kind == HEARTBEAT_FRAME and self._next_field(frames) and self._more():
            self._take_rest(frames)
        return parse_frontend_message(frames)

    def _parse_rest(self, frames: list[Any]) -> FrontendMessage:
        """Receive the rest of the current message into ``frames`` and parse it."""
        self._take_rest(frames)
        return parse_frontend_message(frames)

    def _next_field(self, frames: list[Any]) -> bool:
        """Receive the current message's next frame into ``frames``; False if it has ended."""
        try:
            # Past the message's last frame, NOBLOCK makes an empty queue raise rather than wait
            # for the next message.
            data = self.sock.recv(_NOBLOCK)
        except self._again:
            return False
        if not data:
            self._next_started = True
            return False
        frames.append(data)
        return True

    def _take_rest(self, frames: list[Any]) -> None:
        """Receive what is left of the current message into ``frames``, as zero-copy frames."""
        sock = self.sock
        while self._more():
            frames.append(sock.recv(copy=False))

    def _discard_rest(self) -> int:
        """Receive and drop what is left of the current message; the number of frames dropped."""
        rest: list[Any] = []
        self._take_rest(rest)
        return len(rest)

    def _receive_into(self, sizes: tuple[int, ...], total: int) -> InputFrames:
        """The inputs of ``sizes``, received into one buffer of ``total`` bytes, checked.

        A single input is received as a zero-copy frame, whose buffer is the one buffer: the
        frame says whether more frames follow, which costs less than receiving into a buffer
        and then asking libzmq. Several are received one by one into views of one buffer, by a
        loop in Python: slicing the views with the bytecode's own slice and calling
        ``recv_into`` with its keyword costs less than driving both from C (``map`` over
        ``memoryview.__getitem__`` and a ``functools.partial`` of ``recv_into``), which
        counted fewer instructions but took about half as long again per input.
        """
        n = len(sizes)
        if n == 1 and total:
            try:
                frame = self._recv_frame()
            except self._again:  # the message ended early
                raise _count_error(1, REQUEST_PREFIX_FRAMES) from None
            got = len(frame)
            if got != total:
                self._wrong_size(sizes, 0, got)
            if frame.more:
                raise _count_error(1, REQUEST_PREFIX_FRAMES + 1 + self._discard_rest())
            joined = frame.buffer
            inputs = InputFrames((joined,))
            inputs.joined = joined
            inputs.size = total
            return inputs
        joined = memoryview(bytearray(total))
        inputs = InputFrames()
        append, recv_into = inputs.append, self._recv_into
        offset = 0
        for i, size in enumerate(sizes):
            end = offset + size
            view = joined[offset:end]
            if size:
                try:
                    # Past the message's last frame, NOBLOCK makes an empty queue raise
                    # rather than wait for the next message.
                    got = recv_into(view, flags=_NOBLOCK)
                except self._again:
                    raise _count_error(n, REQUEST_PREFIX_FRAMES + i) from None
                if got != size:
                    self._wrong_size(sizes, i, got)
            else:  # an empty input cannot be told from the next delimiter by its size
                if not self._more():
                    raise _count_error(n, REQUEST_PREFIX_FRAMES + i)
                got = recv_into(view)
                if got:
                    self._discard_rest()
                    raise ProtocolError(f"input {i} is {got} bytes but the header says 0")
            append(view)
            offset = end
        if self._more():
            raise _count_error(n, REQUEST_PREFIX_FRAMES + n + self._discard_rest())
        inputs.joined = joined
        smallest = min(sizes)
        inputs.size = smallest if smallest == max(sizes) else None
        return inputs

    def _wrong_size(self, sizes: tuple[int, ...], i: int, got: int) -> NoReturn:
        """Input ``i`` arrived as a frame of ``got`` bytes, not of ``sizes[i]``."""
        if got == 0:
            # An empty frame where an input belongs: the delimiter that starts the next
            # message, so this one ended early.
            self._next_started = True
            raise _count_error(len(sizes), REQUEST_PREFIX_FRAMES + i)
        self._discard_rest()
        raise ProtocolError(f"input {i} is {got} bytes but the header says {sizes[i]}")

    def _more(self) -> bool:
        return bool(self.sock.getsockopt(_RCVMORE))


def _count_error(inputs: int, frames: int) -> ProtocolError:
    """A request declaring ``inputs`` inputs arrived in ``frames`` frames (the parser's words)."""
    return ProtocolError(
        f"prediction request with {inputs} inputs has {frames} frames, "
        f"expected {REQUEST_PREFIX_FRAMES + inputs}"
    )


@functools.cache
def _backend_send() -> Any:
    """pyzmq's backend ``Socket.send``: ``sock.send`` without the Python function in front of it,
    which handles routing ids and groups (not used on a DEALER)."""
    from zmq.backend import Socket as BackendSocket

    return BackendSocket.send


def send_message(sock: zmq.Socket, frames: list[bytes]) -> None:
    """Queue ``frames`` as one message; a full queue drops it with a warning."""
    send = _backend_send().__get__(sock)
    more = _NOBLOCK | _SNDMORE
    try:
        for frame in frames[:-1]:
            send(frame, more)
        send(frames[-1], _NOBLOCK)
    except _zmq_again():  # looked up only when a send raised
        # Only possible when the frontend has been unreachable long enough to fill the
        # outgoing queue, and then at the first frame (ZeroMQ queues a message whole or not at
        # all); the silence timeout will start a new session.
        logger.warning("frontend unreachable; dropped an outgoing message")


@functools.cache
def _zmq_again() -> type[Exception]:
    import zmq

    return zmq.Again


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
