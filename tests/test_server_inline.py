"""Which sync calls run on the event loop and which in the thread pool (bentolite/server/inline.py)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from server_services import Slow

from bentolite.server import create_app
from bentolite.server.inline import (
    BLOCKING,
    CPU_SHARE,
    FORGIVE,
    INLINE_WAIT,
    POOL_WAIT,
    STREAK,
    InlinePolicy,
)

LIMIT = 0.005


def test_cheap_pool_calls_in_a_row_move_the_api_onto_the_loop():
    policy = InlinePolicy(LIMIT)
    for _ in range(STREAK - 1):
        policy.pool_call(0.0001, 0.0002)
    assert not policy.inline
    policy.pool_call(LIMIT * 2, LIMIT * 2)  # one costly call starts the count again
    for _ in range(STREAK - 1):
        policy.pool_call(0.0001, 0.0002)
    assert not policy.inline
    policy.pool_call(0.0001, 0.0002)
    assert policy.inline


def test_a_call_that_waits_is_not_cheap_whatever_its_cpu():
    policy = InlinePolicy(LIMIT)
    for _ in range(STREAK * 4):
        policy.pool_call(0.0001, POOL_WAIT * LIMIT * 1.5)  # sleeping or blocked on I/O
    assert not policy.inline


def test_a_cpu_bound_call_slowed_by_other_threads_is_still_cheap():
    policy = InlinePolicy(LIMIT)
    for _ in range(STREAK):  # 2 ms of CPU, 60 ms of waiting for the GIL among busy threads
        policy.pool_call(0.002, min(CPU_SHARE * 0.002, POOL_WAIT * LIMIT * 1.5) - 0.0001)
    assert policy.inline


def test_slow_inline_calls_send_the_api_back_to_the_pool_for_longer_each_time():
    policy = InlinePolicy(LIMIT)
    slow = INLINE_WAIT * LIMIT * 1.5
    needed = []
    for _ in range(3):
        while not policy.inline:
            policy.pool_call(0.0001, 0.0002)
        policy.inline_call(slow)  # one slow call may be the process losing its CPU
        assert policy.inline
        policy.inline_call(0.0001)
        policy.inline_call(slow)
        policy.inline_call(slow)  # two in a row: back to the pool
        assert not policy.inline
        count = 0
        while not policy.inline:
            policy.pool_call(0.0001, 0.0002)
            count += 1
        needed.append(count)
        policy.inline_call(BLOCKING * 2)  # one call that blocks is enough
        assert not policy.inline
    assert needed == [STREAK, STREAK * 4, STREAK * 16]  # each return doubles the next stay


def test_a_long_good_run_forgives_the_past():
    policy = InlinePolicy(LIMIT)
    for _ in range(4):
        while not policy.inline:
            policy.pool_call(0.0001, 0.0002)
        policy.inline_call(BLOCKING * 2)
    while not policy.inline:
        policy.pool_call(0.0001, 0.0002)
    for _ in range(FORGIVE):
        policy.inline_call(0.0001)
    policy.inline_call(BLOCKING * 2)
    count = 0
    while not policy.inline:
        policy.pool_call(0.0001, 0.0002)
        count += 1
    assert count == STREAK


def test_on_a_live_app_a_cheap_api_moves_to_the_loop_and_a_blocking_call_moves_it_back():
    app = create_app(Slow())

    async def scenario() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def thread(seconds: float) -> str:
                response = await client.post("/sleep", json=seconds)
                assert response.status_code == 200
                return response.json()["thread"]

            threads = [await thread(0) for _ in range(STREAK + 2)]
            threads.append(await thread(BLOCKING * 1.5))  # on the loop, once
            threads.append(await thread(0))
            return threads

    threads = asyncio.run(scenario())
    assert all(name.startswith("bentolite-api") for name in threads[:STREAK])
    assert threads[STREAK:-1] == ["MainThread"] * 3
    assert threads[-1].startswith("bentolite-api")


def test_each_move_is_logged_once_naming_the_api(caplog):
    policy = InlinePolicy(LIMIT, api="predict")
    with caplog.at_level(logging.INFO, logger="bentolite.server.app"):
        for _ in range(STREAK + 5):
            policy.pool_call(0.0001, 0.0002)
        for _ in range(STREAK * 2):  # more cheap calls on the loop: nothing more to say
            policy.inline_call(0.0001)
        policy.inline_call(BLOCKING * 2)
        for _ in range(STREAK - 1):  # back in the pool, cheap again, but not for long enough
            policy.pool_call(0.0001, 0.0002)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"API 'predict': its last {STREAK} calls were cheap (under 5 ms); calls run on the event loop",
        f"API 'predict': a call on the event loop took {BLOCKING * 2000:.0f} ms; calls run in the "
        f"thread pool again, for at least {STREAK} calls",
    ]
