"""``Deadlines``: the server's timeout on API requests, with one timer for all of them.

``asyncio.timeout(seconds)`` arms a timer of the event loop on entry and cancels it on exit, two
of the costliest steps of a cheap request. Every API request of one app has the same timeout,
so their deadlines come in the order the requests arrive, and one timer, armed for the earliest
deadline still pending, serves them all:

* each request enters an ``asyncio.timeout(None)`` (no timer of its own) and registers it here,
  under its in-flight slot (``inflight.py``), with its deadline; it is released on exit;
* when the timer fires, the requests past their deadline have their timeout moved to now, which
  cancels them exactly as ``asyncio.timeout(seconds)`` would (``TimeoutError`` in the request),
  and the timer is armed again for the earliest deadline left, if any.

Python 3.11 or later (``asyncio.timeout``); before, ``endpoint.py`` uses ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Deadlines:
    """The pending deadlines of one app's API requests, ``seconds`` after each arrives."""

    def __init__(self, seconds: float, slots: int) -> None:
        self.seconds = seconds
        self._pending: list[tuple[float, Any] | None] = [None] * slots
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, slot: int, timeout: Any) -> None:
        """Cancel the block of the entered ``asyncio.timeout(None)`` ``timeout`` once the
        request in ``slot`` has run for ``seconds``, unless :meth:`release` comes first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: what the old one held is gone with it
            self._loop, self._timer = loop, None
            self._pending = [None] * len(self._pending)
        deadline = loop.time() + self.seconds
        self._pending[slot] = (deadline, timeout)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)

    def release(self, slot: int) -> None:
        """The request in ``slot`` is done (before its block exits)."""
        self._pending[slot] = None

    def _expire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        now = loop.time()
        earliest: float | None = None
        for slot, entry in enumerate(self._pending):
            if entry is None:
                continue
            deadline, timeout = entry
            if deadline <= now:
                self._pending[slot] = None
                timeout.reschedule(now)  # cancels the request's task, as its own timer would
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._timer = loop.call_at(earliest, self._expire)
