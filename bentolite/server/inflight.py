"""The API requests in flight in one worker process: admission and a crash record.

:class:`InFlight` bounds the work one worker holds at once: at most ``max_requests`` API
requests, and at most ``max_bytes`` of their bodies (as read, and as decoded). A request past
either bound is refused at once with 503 and ``Retry-After``; a request that finds nothing else
in flight is always admitted, so a body within ``--max-body-size`` can always be served.

Each request in flight occupies one slot of a small record, ``SLOT_SIZE`` bytes per slot:
the API name and the request id, written when the request is admitted and cleared when it is
answered. Under ``bentolite serve`` the record is a memory-mapped file the supervisor reads
when the worker dies, to say what it was doing; otherwise it is plain memory. Writing a slot
is one short memory copy, cheap enough for every request.

Record layout (``read_record`` is the reader): byte 0 is 1 once the worker serves (its app
has started and its artifacts are loaded), 0 before; slot ``i`` starts at
``HEADER_SIZE + i * SLOT_SIZE`` and holds ``api`` ``\\x1f`` ``request id`` ``\\x00``, or a 0
byte when free.
"""

from __future__ import annotations

import itertools
import mmap
import os
from pathlib import Path
from typing import Union

from bentolite.exceptions import Overloaded

HEADER_SIZE = 16
SLOT_SIZE = 128
_SEPARATOR = b"\x1f"

Buffer = Union[bytearray, mmap.mmap]


def record_size(slots: int) -> int:
    return HEADER_SIZE + slots * SLOT_SIZE


class InFlight:
    """Admission of API requests into one worker, and the record of what is in flight."""

    def __init__(self, max_requests: int, max_bytes: int, record_path: str | os.PathLike[str] | None = None):
        if max_requests < 1 or max_bytes < 1:
            raise ValueError("max_requests and max_bytes must be at least 1")
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.count = 0
        self.bytes = 0
        self._free = list(range(max_requests - 1, -1, -1))
        self._charged = [0] * max_requests
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"
        self.record: Buffer = _open_record(record_path, max_requests)

    # --- admission -----------------------------------------------------------------------------
    def enter(self, api: bytes, request_id: bytes | None, declared_bytes: int) -> int:
        """Admit one request to ``api`` (a slot number for :meth:`charge` and :meth:`leave`), or
        raise :class:`Overloaded`. ``declared_bytes`` is its Content-Length (0 when unknown)."""
        if not self._free:
            raise Overloaded(
                f"the server is answering {self.max_requests} requests already; retry shortly",
                detail="the bound is bentolite serve --max-concurrency (per worker)",
            )
        if self.count and self.bytes + declared_bytes > self.max_bytes:
            raise self._too_many_bytes()
        slot = self._free.pop()
        self.count += 1
        self.bytes += declared_bytes
        self._charged[slot] = declared_bytes
        if request_id is None:
            request_id = (self._id_prefix + format(next(self._ids), "x")).encode()
        entry = api + _SEPARATOR + request_id[: SLOT_SIZE - len(api) - 2] + b"\x00"
        offset = HEADER_SIZE + slot * SLOT_SIZE
        self.record[offset : offset + len(entry)] = entry
        return slot

    def charge(self, slot: int, size: int) -> None:
        """Account for ``size`` bytes of the request in ``slot`` beyond what it declared (a
        body without Content-Length, a decoded body); :class:`Overloaded` past the bound."""
        extra = size - self._charged[slot]
        if extra <= 0:
            return
        if self.count > 1 and self.bytes + extra > self.max_bytes:
            raise self._too_many_bytes()
        self._charged[slot] = size
        self.bytes += extra

    def leave(self, slot: int) -> None:
        self.record[HEADER_SIZE + slot * SLOT_SIZE] = 0
        self.bytes -= self._charged[slot]
        self._charged[slot] = 0
        self.count -= 1
        self._free.append(slot)

    def _too_many_bytes(self) -> Overloaded:
        return Overloaded(
            f"the server holds {self.bytes} bytes of request bodies already, its bound is "
            f"{self.max_bytes}; retry shortly",
            detail="the bound is bentolite serve --max-inflight-bytes (per worker)",
        )

    # --- the record ----------------------------------------------------------------------------
    def mark_serving(self) -> None:
        """Tell the supervisor this worker serves: its app has started, its artifacts loaded."""
        self.record[0] = 1


def _open_record(path: str | os.PathLike[str] | None, slots: int) -> Buffer:
    size = record_size(slots)
    if path is None:
        return bytearray(size)
    with open(path, "r+b") as f:
        if os.fstat(f.fileno()).st_size < size:
            f.truncate(size)
        return mmap.mmap(f.fileno(), size)


def create_record(path: str | os.PathLike[str], slots: int) -> None:
    """A fresh, empty record file for a worker about to start."""
    with open(path, "wb") as f:
        f.truncate(record_size(slots))


def read_record(path: str | os.PathLike[str]) -> tuple[bool, list[tuple[str, str]]]:
    """``(serving, [(api, request id), ...])`` from a worker's record file."""
    data = Path(path).read_bytes()
    if len(data) < HEADER_SIZE:
        return False, []
    entries = []
    for offset in range(HEADER_SIZE, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        if data[offset] == 0:
            continue
        entry = data[offset : offset + SLOT_SIZE].split(b"\x00", 1)[0]
        api, _, request_id = entry.partition(_SEPARATOR)
        entries.append((api.decode("utf-8", "replace"), request_id.decode("utf-8", "replace")))
    return data[0] == 1, entries
