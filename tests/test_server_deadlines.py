"""One timer for the timeouts of all API requests (bentolite/server/deadlines.py)."""

import asyncio
import sys
import time

import pytest

from bentolite.server.deadlines import Deadlines

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")

SECONDS = 0.2


async def _request(deadlines: Deadlines, slot: int, work: float) -> float:
    """Run ``work`` seconds under the deadline; how long it ran before it timed out (or -1)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(None) as block:
            deadlines.watch(slot, block)
            try:
                await asyncio.sleep(work)
            finally:
                deadlines.release(slot)
    except TimeoutError:
        return time.monotonic() - started
    return -1.0


def test_each_request_times_out_at_its_own_deadline_and_finished_ones_never():
    async def main() -> list[float]:
        deadlines = Deadlines(SECONDS, slots=4)
        quick = asyncio.ensure_future(_request(deadlines, 0, 0.01))  # arms the timer, then ends
        await asyncio.sleep(0.1)
        late = asyncio.ensure_future(_request(deadlines, 1, 10))  # its deadline is 0.1 s later
        later = asyncio.ensure_future(_request(deadlines, 2, 10))
        done = asyncio.ensure_future(_request(deadlines, 3, SECONDS / 2))
        return list(await asyncio.gather(quick, late, later, done))

    quick, late, later, done = asyncio.run(main())
    assert quick == -1 and done == -1
    for ran in (late, later):  # cut at its own deadline: not at the first request's, not later
        assert SECONDS * 0.9 <= ran < SECONDS + 0.15


def test_the_timer_follows_a_new_event_loop():
    deadlines = Deadlines(0.05, slots=1)
    for _ in range(2):  # a second loop: the first one's timer died with it
        assert asyncio.run(_request(deadlines, 0, 10)) >= 0.045
