"""``Deadlines``: the server's timeout on API requests, with one timer for all of them.

``asyncio.timeout(seconds)`` arms a timer of the event loop on entry and cancels it on exit, and
builds a context manager whose entry and exit run in Python: together among the costliest steps
of a cheap request. Every API request of one app has the same timeout, so their deadlines come in
the order the requests arrive, and one timer, armed for the earliest deadline still pending,
serves them all:

* each request runs its work through :meth:`Deadlines.run`, which notes the request's task and
  deadline under its in-flight slot (``inflight.py``) and forgets them when the work ends;
* when the timer fires, the tasks past their deadline are cancelled, and the timer is armed again
  for the earliest deadline left, if any;
* in a cancelled request, :meth:`Deadlines.run` turns the cancellation into ``TimeoutError``, as
  ``asyncio.timeout`` does: the task's cancel request is withdrawn (``Task.uncancel``), and a
  cancellation that also came from elsewhere (a shutdown) goes on as ``CancelledError``.

Python 3.11 or later (``Task.uncancel``); before, ``endpoint.py`` uses ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

#: what a slot holds once its deadline passed and its task was cancelled
_EXPIRED: Any = object()


class Deadlines:
    """The pending deadlines of one app's API requests, ``seconds`` after each arrives."""

    def __init__(self, seconds: float, slots: int) -> None:
        self.seconds = seconds
        #: per slot: (deadline, task), _EXPIRED, or None
        self._pending: list[Any] = [None] * slots
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, slot: int, work: Awaitable[T]) -> T:
        """Await ``work`` for the request in ``slot``; ``TimeoutError`` once it has run for
        ``seconds``."""
        # with the loop named, current_task skips get_running_loop, whose check that the loop
        # belongs to this process is a getpid system call in CPython 3.11; a task found for the
        # loop of the last request is the running task, as on that loop it can only be
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:  # the first request, or a new event loop
            task = asyncio.current_task()
            assert task is not None
        cancelling = task.cancelling()  # type: ignore[attr-defined]
        self._watch(slot, task)
        try:
            result = await work
        except asyncio.CancelledError:
            if self._release(slot) and task.uncancel() <= cancelling:  # type: ignore[attr-defined]
                raise TimeoutError(f"the request did not finish within {self.seconds:g} s") from None
            raise
        except BaseException:
            if self._release(slot):  # the deadline passed, but the work ended otherwise
                task.uncancel()  # type: ignore[attr-defined]
            raise
        if self._release(slot):  # the work caught the cancellation and answered all the same
            task.uncancel()  # type: ignore[attr-defined]
        return result

    def _watch(self, slot: int, task: asyncio.Task[Any]) -> None:
        loop = task.get_loop()
        if loop is not self._loop:  # a new event loop: what the old one held is gone with it
            self._loop, self._timer = loop, None
            self._pending = [None] * len(self._pending)
        deadline = loop.time() + self.seconds
        self._pending[slot] = (deadline, task)
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)

    def _release(self, slot: int) -> bool:
        """Forget the request in ``slot``; whether its deadline had passed (its task cancelled)."""
        entry = self._pending[slot]
        self._pending[slot] = None
        return entry is _EXPIRED

    def _expire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        now = loop.time()
        earliest: float | None = None
        for slot, entry in enumerate(self._pending):
            if entry is None or entry is _EXPIRED:
                continue
            deadline, task = entry
            if deadline <= now:
                self._pending[slot] = _EXPIRED
                task.cancel()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._timer = loop.call_at(earliest, self._expire)
