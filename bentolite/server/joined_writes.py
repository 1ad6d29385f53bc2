"""``JoiningTransport``: an answer's head and body leave in one socket write.

uvicorn writes an answer in parts: the status line and headers when the app sends
``http.response.start``, then each ``http.response.body``. Each part is a system call and, on
TCP, a segment of its own, which the client is woken for and reads separately.

The protocol (``protocol.py``) gives uvicorn its connection's transport wrapped in a
:class:`JoiningTransport`, which sends the two parts in one write:

* a small write waits for the next one and leaves with it, at once; so an answer's head waits
  for its body, and the two go out as one write the moment the body is written;
* a write that finds nothing to join waits at most until the event loop's current step ends
  (an answer without a body, the last part of a streamed answer, a ``100 Continue``, writes of
  another protocol after an upgrade), or until the connection is closed or half-closed;
* a write of ``HOLD_LIMIT`` bytes or more is not copied into another: it goes out at once,
  after what was held, and is buffered and flow-controlled by the transport itself, as
  without the wrapper;
* every question about what is buffered counts the held bytes; aborting drops them, as it
  drops the transport's own buffer.

The order of the bytes on the connection never changes: every write goes through the wrapper.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: a write this large or larger is never held, nor copied into one with another
HOLD_LIMIT = 64 * 1024


class JoiningTransport:
    """A connection's transport whose writes within one answer leave as one (see the module
    docstring). Every other call goes to the transport itself."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._write = transport.write
        self._call_soon = loop.call_soon
        self._call_later = loop.call_later
        self._held: bytes | None = None
        self._linger: float | None = None
        # the calls that only pass through go straight to the transport's own methods
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.is_reading = transport.is_reading
        self.can_write_eof = transport.can_write_eof
        self.get_write_buffer_limits = transport.get_write_buffer_limits
        self.set_write_buffer_limits = transport.set_write_buffer_limits
        self.set_protocol = transport.set_protocol
        self.get_protocol = transport.get_protocol

    # --- writes ----------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            size = len(data)
            if size >= HOLD_LIMIT:
                self._write(data)
            elif size:  # an empty write (h11 ends an answer with one) writes nothing
                # a copy of a mutable buffer: the caller may reuse it once write returns
                self._held = data if type(data) is bytes else bytes(data)
                self._call_soon(self.flush)
            return
        self._held = None
        if len(data) >= HOLD_LIMIT:  # not copied into one: written after what was held
            self._write(held)
            self._write(data)
        else:
            self._write(held + data)

    def write_whole(self, data: bytes) -> None:
        """Write ``data``, which needs nothing joined to it (a whole answer), now, after what is
        held."""
        held = self._held
        if held is None:
            self._write(data)
        else:
            self._held = None
            self._write(held + data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held now (when the loop step ends, before a close)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self.is_closing():
                self._write(held)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + len(self._held or b"")

    # --- the connection --------------------------------------------------------------------------
    def linger_on_close(self, seconds: float) -> None:
        """Make :meth:`close` a lingering close: what was written is sent, the connection is
        half-closed, what the client still sends is read (its protocol drops it), and the
        connection closes when the client closes its side or after ``seconds``. Closed at once
        with bytes of the client's unread, the kernel would reset the connection, and the client
        could lose the end of its answer."""
        self._linger = seconds

    def close(self) -> None:
        self.flush()
        linger, transport = self._linger, self.transport
        if linger is None or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        self._linger = None
        self.is_closing = _closing  # to the protocol, closed from now on
        transport.write_eof()
        self._call_later(linger, transport.close)

    def abort(self) -> None:
        self._held = None
        self.transport.abort()


def _closing() -> bool:
    return True
