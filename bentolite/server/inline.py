"""``InlinePolicy``: whether a sync API's calls run on the event loop or in the thread pool.

The thread pool keeps the event loop free while a function runs, but the hop costs: a queue, a
thread wake-up, a future resolved across threads, and GIL hand-offs between the pool threads and
the loop. For a cheap CPU-bound call (a small model, one row) the hop costs more than the call,
and gains nothing: the call holds the GIL in the pool as it would on the loop. Such calls run
inline, on the loop, as a hand-written ``async def`` endpoint does.

The policy, per API:

* Calls start in the pool, each timed by the CPU time of its thread and by the clock.
* After ``STREAK`` pool calls in a row that each used less than ``limit`` seconds of CPU and
  spent on the clock less than ``POOL_WAIT * limit`` or ``CPU_SHARE`` times its CPU time,
  calls run inline. A call that waits on I/O or a lock is not cheap; but the clock of a pool
  call also counts its waits for the GIL, which grow with the requests in flight, hence the
  second bound, relative to the call's own CPU time.
* Two inline calls in a row that each take more than ``INLINE_WAIT * limit`` on the clock, or
  one that takes more than ``BLOCKING`` seconds, send the API back to the pool (only the clock
  is read on the loop, as it costs no system call; one slow call alone may be the process
  losing its CPU for a moment). It stays there for ``STREAK`` calls, then twice as many after
  each further return (at most ``MAX_BACKOFF`` times ``STREAK``, and back to ``STREAK`` after
  ``FORGIVE`` inline calls without trouble): an API that is often slow settles in the pool.

``limit`` defaults to Python's GIL switch interval (5 ms): a pool thread holding the GIL keeps
the loop waiting up to that long anyway, so an inline call below it delays the loop no more.

Each move is logged (INFO, ``bentolite.server.app``), naming the API, so a server whose API went
back to the pool says so and why.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("bentolite.server.app")

STREAK = 16
POOL_WAIT = 10
CPU_SHARE = 50
INLINE_WAIT = 4
BLOCKING = 0.1
MAX_BACKOFF = 64
FORGIVE = 10_000


class InlinePolicy:
    """Per-API decision between the event loop and the thread pool (see the module docstring)."""

    def __init__(self, limit: float | None = None, api: str = "") -> None:
        self.limit = sys.getswitchinterval() if limit is None else limit
        self.api = api
        self.inline = False
        self._cheap = 0
        self._needed = STREAK
        self._backoff = 1
        self._slow = False  # whether the last inline call was slow
        self._good = 0  # inline calls since the last slow one

    def pool_call(self, cpu_seconds: float, wall_seconds: float) -> None:
        """Record a call made in the pool."""
        short = wall_seconds < POOL_WAIT * self.limit or wall_seconds < CPU_SHARE * cpu_seconds
        if cpu_seconds < self.limit and short:
            self._cheap += 1
            if self._cheap >= self._needed and not self.inline:
                self.inline = True
                logger.info(
                    "API %r: its last %d calls were cheap (under %.0f ms); calls run on the event loop",
                    self.api,
                    self._cheap,
                    self.limit * 1000,
                )
        else:
            self._cheap = 0

    def inline_call(self, wall_seconds: float) -> None:
        """Record a call made on the loop."""
        if wall_seconds <= INLINE_WAIT * self.limit:
            self._slow = False
            self._good += 1
            if self._good >= FORGIVE:
                self._backoff = 1
            return
        self._good = 0
        if self._slow or wall_seconds > BLOCKING:
            logger.info(
                "API %r: a call on the event loop took %.0f ms; calls run in the thread pool again, "
                "for at least %d calls",
                self.api,
                wall_seconds * 1000,
                STREAK * self._backoff,
            )
            self._slow = False
            self.inline = False
            self._cheap = 0
            self._needed = STREAK * self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        else:
            self._slow = True
