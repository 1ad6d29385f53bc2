"""Adaptive micro-batching: concurrent requests to one API become one call of its function.

How a batched API is served
---------------------------
``@api(..., batch=True, max_batch_size=N, max_latency_ms=M)`` gives the API one dispatcher
(a :class:`Batcher`) in each server process. Requests wait in its queue, and the dispatcher
runs **one call at a time**: it takes requests from the head of the queue, merges their
payloads with the adapter (DataFrames concatenated, arrays joined along axis 0, Clipper inputs
and JSON, text or file payloads joined into one list), calls the function once, splits the
result back and answers each caller with its own part. While a call runs, new requests queue
up and form the next batch, so batches grow with the load on their own: a lone client gets
batches of one and no added wait. The call runs in the process, with no proxy hop.

``max_batch_size`` (N) is a hard cap on the number of *items* one call receives. An item is
what the adapter counts: a row of a DataFrame or array, one input of a Clipper query body, one
request for JSON, text and file inputs. A request is never split: one that holds more than N
items is called on its own. Under the cap, the dispatcher keeps an adaptive limit (below).

``max_latency_ms`` (M) is the latency budget of one request: from its arrival at the API to
the end of the call that answers it (reading the body, parsing and writing the response are
not counted). Three rules keep requests within it:

1. *Batch limit, additive increase / multiplicative decrease.* A request may wait for the call
   running when it arrives and then for its own call, so one call must take at most M/2.
   After each call the dispatcher compares its duration with M/2: if slower, the limit drops
   to 3/4 of that call's item count, or of the limit if that is smaller (never below 1); if not
   slower and the call was full (it reached the limit), the limit grows by one item (never
   above N). The limit starts at N; calls that raise do not change it.
2. *Admission.* Once the dispatcher has timed a call, a request that arrives while a call
   runs or others are queued is refused at once with 503 when the dispatcher expects it to
   finish later than M after its arrival. The estimate is the rest of the running call plus
   the calls needed for the items queued ahead of it and its own, each priced by a
   least-squares fit of call duration against item count over the last 64 calls. A request
   that finds the API idle is always accepted, even when one call alone takes longer than M
   (then every request that has to queue is refused: set M to at least twice the duration of
   a full call).
3. *Expiry.* A request still queued M after its arrival is answered with 503 instead of being
   called. No request waits forever, and an overloaded API sheds load instead of building a
   backlog.

When the API is idle and requests arrive closer together than half of a call's fixed cost
(the fit's intercept minus its per-item cost), waiting for the next request costs its
neighbours less than the extra call it saves, so the dispatcher waits: for as long as arrivals
keep coming within twice the average gap, the batch is below the limit, and the oldest queued
request can still finish within M/2. Otherwise it calls at once.

A batch whose payloads cannot be merged (say, arrays of different widths) is called one
request at a time, so a malformed request fails alone. An exception raised by the function
fails every request of that batch. Without ``batch=True`` both knobs are ignored: each request
is its own call and only the server's ``--timeout`` bounds it.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import math
import time
from collections.abc import Awaitable
from typing import Any, Callable, Optional

from bentolite.exceptions import Overloaded

#: how many recent calls the duration fit uses
FIT_WINDOW = 64
#: the limit after a call slower than half the budget, as a fraction of that call's item count
DECREASE_FACTOR = 0.75
#: weight of the newest gap in the moving average of the time between arrivals
GAP_SMOOTHING = 0.2

Execute = Callable[[list[Any]], Awaitable[list[Any]]]
Observer = Callable[[int, float, int], None]


class DurationFit:
    """Least-squares line ``seconds = fixed + per_item * items`` over the last calls."""

    def __init__(self, window: int = FIT_WINDOW) -> None:
        self._points: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self.fixed = 0.0
        self.per_item = 0.0

    @property
    def known(self) -> bool:
        return bool(self._points)

    def add(self, items: int, seconds: float) -> None:
        self._points.append((items, seconds))
        n = len(self._points)
        mean_x = sum(x for x, _ in self._points) / n
        mean_y = sum(y for _, y in self._points) / n
        sxx = sum((x - mean_x) ** 2 for x, _ in self._points)
        sxy = sum((x - mean_x) * (y - mean_y) for x, y in self._points)
        # a call never gets cheaper with more items; noise must not make the slope negative
        self.per_item = max(0.0, sxy / sxx) if sxx > 0 else 0.0
        self.fixed = max(0.0, mean_y - self.per_item * mean_x)

    def estimate(self, items: int) -> float:
        return self.fixed + self.per_item * items


class _Queued:
    __slots__ = ("arrived", "future", "payload", "size")

    def __init__(self, payload: Any, size: int, arrived: float, future: asyncio.Future[Any]) -> None:
        self.payload = payload
        self.size = size
        self.arrived = arrived
        self.future = future


class Batcher:
    """The dispatcher of one batched API (see the module docstring for its rules).

    ``execute(payloads)`` runs one call for a list of request payloads and returns one outcome
    per payload, in order; each caller of :meth:`submit` gets its own outcome. ``observe(items,
    seconds, limit)`` is told about every successful call.
    """

    def __init__(
        self,
        name: str,
        execute: Execute,
        *,
        max_batch_size: int,
        max_latency_ms: float,
        observe: Optional[Observer] = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_latency_ms = max_latency_ms
        self.budget = max_latency_ms / 1000.0
        self.limit = max_batch_size
        self.fit = DurationFit()
        self._execute = execute
        self._observe = observe
        self._clock = clock
        self._queue: collections.deque[_Queued] = collections.deque()
        self._queued_items = 0
        self._last_arrival: float | None = None
        self._arrival_gap: float | None = None
        self._running_since: float | None = None
        self._running_items = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[bool] | None = None

    # --- callers ---------------------------------------------------------------------------
    async def submit(self, payload: Any, size: int) -> Any:
        """Queue one request's payload (``size`` items) and wait for its outcome.

        Raises :class:`Overloaded` when the request cannot be answered within the budget.
        """
        now = self._clock()
        self._note_arrival(now)
        self._admit(size, now)
        self._ensure_running()
        assert self._loop is not None
        future = self._loop.create_future()
        self._queue.append(_Queued(payload, size, now, future))
        self._queued_items += size
        self._wake(True)
        return await future

    async def close(self) -> None:
        """Answer everything queued, then stop the dispatcher."""
        self._closing = True
        task = self._task
        if task is None or task.done() or self._loop is not asyncio.get_running_loop():
            return
        self._wake(True)
        await task
        self._task = None

    # --- admission -------------------------------------------------------------------------
    def _note_arrival(self, now: float) -> None:
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            previous = self._arrival_gap
            self._arrival_gap = gap if previous is None else previous + GAP_SMOOTHING * (gap - previous)
        self._last_arrival = now

    def _admit(self, size: int, now: float) -> None:
        running = self._running_since
        if (running is None and not self._queue) or not self.fit.known:
            return
        remaining = 0.0
        if running is not None:
            remaining = max(0.0, running + self.fit.estimate(self._running_items) - now)
        items = self._queued_items + size
        calls = math.ceil(items / self.limit)
        eta = remaining + calls * self.fit.estimate(min(items, self.limit))
        if eta > self.budget:
            raise Overloaded(
                f"API {self.name!r} is overloaded: this request would take about {eta * 1000:.0f} ms, "
                f"over its latency budget of {self.max_latency_ms:g} ms; retry later",
                detail="refused on arrival by the adaptive batcher",
            )

    # --- the dispatcher --------------------------------------------------------------------
    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        # first use, or a new event loop (a test client, a restarted server)
        self._loop = loop
        self._closing = False
        self._waiter = None
        # in a fresh context: the dispatcher serves every request, not the one that started it
        # (its request id must not label the batches' log lines)
        self._task = contextvars.Context().run(
            loop.create_task, self._run(), name=f"bentolite-batcher-{self.name}"
        )

    def _wake(self, arrived: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(arrived)

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for the next arrival (True) or the timeout (False)."""
        assert self._loop is not None
        waiter = self._waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, self._wake, False)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    await self._wait(None)
                    continue
                await self._gather()
                batch = self._take()
                if batch:
                    await self._call(batch)
        finally:
            # cancelled (the loop is going away): nobody may be left waiting
            self._fail_queued(Overloaded(f"API {self.name!r} is shutting down; retry later"))

    async def _gather(self) -> None:
        """Wait for more requests while that is cheaper than calling now (module docstring)."""
        while self._queued_items < self.limit and not self._closing:
            gap = self._arrival_gap
            if gap is None or 2 * gap >= self.fit.fixed - self.fit.per_item:
                return
            waited = self._clock() - self._queue[0].arrived
            if waited + gap + self.fit.estimate(self._queued_items + 1) > self.budget / 2:
                return
            if not await self._wait(2 * gap):
                return

    def _take(self) -> list[_Queued]:
        now = self._clock()
        taken: list[_Queued] = []
        items = 0
        while self._queue:
            head = self._queue[0]
            if taken and items + head.size > self.limit:
                break
            self._queue.popleft()
            self._queued_items -= head.size
            if head.future.done():  # its caller gave up (timeout, disconnect)
                continue
            if now - head.arrived > self.budget:
                head.future.set_exception(
                    Overloaded(
                        f"API {self.name!r} is overloaded: the request waited more than its "
                        f"latency budget of {self.max_latency_ms:g} ms; retry later",
                        detail="expired in the adaptive batcher's queue",
                    )
                )
                continue
            taken.append(head)
            items += head.size
        return taken

    async def _call(self, batch: list[_Queued]) -> None:
        items = sum(q.size for q in batch)
        started = self._clock()
        self._running_since, self._running_items = started, items
        try:
            outcomes = await self._execute([q.payload for q in batch])
        except Exception as exc:  # the function failed: every caller of the batch gets the error
            self._running_since = None
            for queued in batch:
                if not queued.future.done():
                    queued.future.set_exception(exc)
            return
        except BaseException:
            self._running_since = None
            for queued in batch:
                if not queued.future.done():
                    queued.future.cancel()
            raise
        elapsed = self._clock() - started
        self._running_since = None
        for queued, outcome in zip(batch, outcomes):
            if not queued.future.done():
                queued.future.set_result(outcome)
        self._adapt(items, elapsed)
        if self._observe is not None:
            self._observe(items, elapsed, self.limit)

    def _adapt(self, items: int, seconds: float) -> None:
        self.fit.add(items, seconds)
        if seconds > self.budget / 2:
            self.limit = max(1, int(min(self.limit, items) * DECREASE_FACTOR))
        elif items >= self.limit:
            self.limit = min(self.max_batch_size, self.limit + 1)

    def _fail_queued(self, exc: Exception) -> None:
        while self._queue:
            queued = self._queue.popleft()
            if not queued.future.done():
                queued.future.set_exception(exc)
        self._queued_items = 0
