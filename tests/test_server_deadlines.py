"""One timer for the timeouts of all API requests (bentolite/server/deadlines.py)."""

import asyncio
import sys
import time

import pytest

from bentolite.server.deadlines import Deadlines

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel is Python 3.11+")

SECONDS = 0.2


async def _request(deadlines: Deadlines, slot: int, work: float) -> float:
    """Run ``work`` seconds under the deadline; how long it ran before it timed out (or -1)."""
    started = time.monotonic()
    try:
        await deadlines.run(slot, asyncio.sleep(work))
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


def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    async def main() -> None:
        deadlines = Deadlines(10, slots=1)
        task = asyncio.ensure_future(deadlines.run(0, asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()  # a shutdown, say: not the deadline
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_cancellation_from_elsewhere_after_the_deadline_is_not_a_timeout():
    async def request(deadlines: Deadlines) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            asyncio.current_task().cancel()  # cancelled again meanwhile, from elsewhere
            raise

    async def main() -> None:
        deadlines = Deadlines(0.02, slots=1)
        task = asyncio.ensure_future(deadlines.run(0, request(deadlines)))
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_work_that_answers_despite_the_deadline_leaves_its_task_uncancelled():
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "answered"
        return "slept"

    async def request(deadlines: Deadlines) -> tuple[str, int]:
        answer = await deadlines.run(0, stubborn())
        await asyncio.sleep(0.01)  # no cancellation left pending to hit this await
        return answer, asyncio.current_task().cancelling()

    deadlines = Deadlines(0.02, slots=1)
    assert asyncio.run(request(deadlines)) == ("answered", 0)


def test_work_that_fails_after_the_deadline_fails_with_its_own_error():
    async def failing() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ValueError("own error") from None

    async def request(deadlines: Deadlines) -> int:
        with pytest.raises(ValueError, match="own error"):
            await deadlines.run(0, failing())
        return asyncio.current_task().cancelling()

    assert asyncio.run(request(Deadlines(0.02, slots=1))) == 0
