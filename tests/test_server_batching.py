"""Adaptive micro-batching (bentolite/server/batching.py), alone and behind the app."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from server_services import Batched, Faulty

from bentolite.exceptions import Overloaded
from bentolite.server import create_app
from bentolite.server.batching import Batcher, DurationFit


class Model:
    """A fake model: each call takes ``fixed + per_item * items`` seconds and records its size."""

    def __init__(self, fixed: float = 0.03, per_item: float = 0.0) -> None:
        self.fixed = fixed
        self.per_item = per_item
        self.calls: list[list] = []

    async def __call__(self, payloads: list) -> list:
        self.calls.append(list(payloads))
        await asyncio.sleep(self.fixed + self.per_item * len(payloads))
        return [p * 10 for p in payloads]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_each_caller_gets_its_own_result():
    model = Model()
    batcher = Batcher("m", model, max_batch_size=64, max_latency_ms=1000)

    async def scenario():
        return await asyncio.gather(*[batcher.submit(i, 1) for i in range(20)])

    assert run(scenario()) == [i * 10 for i in range(20)]
    sizes = [len(c) for c in model.calls]
    assert sum(sizes) == 20 and max(sizes) > 1
    assert [p for c in model.calls for p in c] == list(range(20))  # arrival order kept


def test_max_batch_size_caps_items_and_a_large_request_runs_alone():
    model = Model(fixed=0.01)
    batcher = Batcher("m", model, max_batch_size=4, max_latency_ms=5000)

    async def scenario():
        small = [batcher.submit(i, 1) for i in range(10)]
        big = batcher.submit(100, 7)  # more items than the cap: called on its own
        return await asyncio.gather(*small, big)

    results = run(scenario())
    assert results[-1] == 1000
    for call in model.calls:
        items = sum(7 if p == 100 else 1 for p in call)
        assert items <= 4 or call == [100]


def test_limit_decreases_when_calls_are_slow_and_grows_back_when_full_and_fast():
    batcher = Batcher("m", Model(), max_batch_size=32, max_latency_ms=100)
    batcher._adapt(32, 0.08)  # slower than half the budget
    assert batcher.limit == 24
    batcher._adapt(24, 0.09)
    assert batcher.limit == 18
    batcher._adapt(5, 0.01)  # fast but not full: no evidence that more would fit
    assert batcher.limit == 18
    batcher._adapt(18, 0.01)
    assert batcher.limit == 19
    for _ in range(50):
        batcher._adapt(batcher.limit, 0.01)
    assert batcher.limit == 32  # never above max_batch_size
    for _ in range(30):
        batcher._adapt(batcher.limit, 1.0)
    assert batcher.limit == 1  # never below 1


def test_duration_fit_learns_fixed_and_per_item_costs():
    fit = DurationFit()
    assert not fit.known
    for items in (1, 4, 8, 16, 2):
        fit.add(items, 0.005 + 0.001 * items)
    assert fit.fixed == pytest.approx(0.005) and fit.per_item == pytest.approx(0.001)
    assert fit.estimate(10) == pytest.approx(0.015)
    same = DurationFit()
    same.add(3, 0.02)
    same.add(3, 0.04)
    assert same.per_item == 0 and same.fixed == pytest.approx(0.03)


def test_requests_that_cannot_meet_the_budget_get_503_instead_of_queueing():
    # time scales well above a busy machine's scheduling jitter
    model = Model(fixed=0.3)
    batcher = Batcher("m", model, max_batch_size=2, max_latency_ms=500)

    async def scenario():
        await batcher.submit(0, 1)  # teaches the fit that a call takes 300 ms
        return await asyncio.gather(*[batcher.submit(i, 1) for i in range(8)], return_exceptions=True)

    results = run(scenario())
    refused = [r for r in results if isinstance(r, Overloaded)]
    served = [r for r in results if not isinstance(r, Exception)]
    assert refused and served
    assert all(r.http_status == 503 and "latency budget" in r.message for r in refused)
    assert len(model.calls) <= 3  # the backlog was shed, not worked through


def test_a_request_that_finds_the_api_idle_is_always_accepted():
    batcher = Batcher("m", Model(fixed=0.25), max_batch_size=4, max_latency_ms=100)

    async def scenario():
        first = await batcher.submit(1, 1)
        second = await batcher.submit(2, 1)  # the fit says 250 ms > 100 ms, but nothing is ahead
        return first, second

    assert run(scenario()) == (10, 20)


def test_requests_expire_in_the_queue_after_the_budget():
    async def stall(payloads):
        await asyncio.sleep(0.15)
        return payloads

    batcher = Batcher("m", stall, max_batch_size=1, max_latency_ms=100)

    async def scenario():
        return await asyncio.gather(*[batcher.submit(i, 1) for i in range(3)], return_exceptions=True)

    first, *rest = run(scenario())
    assert first == 0
    assert all(isinstance(r, Overloaded) and "waited" in r.message for r in rest)


def test_an_exception_fails_every_caller_of_its_batch_and_the_next_batch_runs():
    calls = []

    async def flaky(payloads):
        calls.append(payloads)
        await asyncio.sleep(0.02)
        if len(calls) == 1:
            raise RuntimeError("broken")
        return payloads

    batcher = Batcher("m", flaky, max_batch_size=8, max_latency_ms=1000)

    async def scenario():
        first = await asyncio.gather(*[batcher.submit(i, 1) for i in range(3)], return_exceptions=True)
        second = await batcher.submit(9, 1)
        return first, second

    first, second = run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first) and second == 9


def test_a_caller_that_gives_up_is_skipped_and_close_drains_the_queue():
    model = Model(fixed=0.05)
    batcher = Batcher("m", model, max_batch_size=1, max_latency_ms=5000)

    async def scenario():
        running = asyncio.create_task(batcher.submit(1, 1))
        await asyncio.sleep(0.01)
        gave_up = asyncio.create_task(batcher.submit(2, 1))
        waiting = asyncio.create_task(batcher.submit(3, 1))
        await asyncio.sleep(0.01)
        gave_up.cancel()
        await batcher.close()
        return await running, await waiting

    assert run(scenario()) == (10, 30)
    assert [c for call in model.calls for c in call] == [1, 3]


@pytest.mark.parametrize(("gap", "waits"), [(0.002, True), (0.1, False)])
def test_an_idle_api_waits_for_company_only_when_arrivals_are_frequent(gap, waits):
    model = Model(fixed=0.04)
    batcher = Batcher("m", model, max_batch_size=16, max_latency_ms=1000)

    async def scenario():
        await batcher.submit(0, 1)  # the fit learns that a call costs 40 ms
        batcher._arrival_gap = gap  # as if requests had been arriving that often
        tasks = []
        for i in range(1, 6):  # a request every 3 ms; the first finds the API idle
            tasks.append(asyncio.create_task(batcher.submit(i, 1)))
            await asyncio.sleep(0.003)
        return await asyncio.gather(*tasks)

    assert run(scenario()) == [i * 10 for i in range(1, 6)]
    first = model.calls[1]
    assert (len(first) > 1) is waits  # waited for company, or called at once


def test_each_adapter_counts_the_batch_items_of_a_payload_as_its_merge_does():
    import numpy as np
    import pandas as pd

    from bentolite.adapters import ClipperFloatsInput, DataframeInput, FileInput, JsonInput, NdarrayInput

    cases = [
        (DataframeInput(), pd.DataFrame({"a": [1, 2, 3]}), 3),
        (NdarrayInput(), np.zeros((4, 2), dtype="float32"), 4),
        (NdarrayInput(), np.float32(1.0), 1),
        (ClipperFloatsInput(), [np.zeros(3, dtype="float32")] * 2, 2),
        (JsonInput(), [1, 2, 3], 1),  # one JSON value is one item, even a list
        (FileInput(), b"abc", 1),
    ]
    for adapter, payload, items in cases:
        assert adapter.batch_size(payload) == items == adapter.merge([payload])[1][0]


# --- through the app -----------------------------------------------------------------------------
async def _post_all(app, requests: list[tuple[str, dict]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*[client.post(path, **kwargs) for path, kwargs in requests])


def test_app_merges_concurrent_json_requests():
    service = Batched()
    answers = run(_post_all(create_app(service), [("/double", {"json": i}) for i in range(24)]))
    assert [a.json() for a in answers] == [i * 2 for i in range(24)]
    assert max(service.calls) > 1 and max(service.calls) <= 16 and sum(service.calls) == 24


def test_app_concatenates_dataframes_and_splits_rows_back():
    service = Batched()
    requests = [("/add", {"json": [{"a": i, "b": 1}, {"a": i, "b": 2}, {"a": i, "b": 3}]}) for i in range(8)]
    answers = run(_post_all(create_app(service), requests))
    assert [a.json() for a in answers] == [[i + 1, i + 2, i + 3] for i in range(8)]
    assert max(service.calls) > 3  # more rows than one request holds


def test_app_batches_clipper_bodies_and_answers_in_clipper_shape():
    service = Batched()
    requests = [("/total", {"json": {"input": [float(i), 1.0]}}) for i in range(6)]
    requests.append(("/total/predict", {"json": {"input_batch": [[1.0], [2.0, 2.0]]}}))
    answers = [a.json() for a in run(_post_all(create_app(service), requests))]
    assert [a["output"] for a in answers[:6]] == [i + 1.0 for i in range(6)]
    assert all(a["default"] is False for a in answers[:6])
    assert [p["output"] for p in answers[6]["batch_predictions"]] == [1.0, 4.0]
    assert max(service.calls) > 2


def test_app_runs_unmergeable_payloads_one_by_one_so_only_the_bad_one_fails():
    service = Batched()
    requests = [("/row_sums", {"json": [[i, 1.0]]}) for i in range(4)]
    requests.append(("/row_sums", {"json": [[1.0, 2.0, 3.0]]}))  # another width
    answers = run(_post_all(create_app(service), requests))
    assert [a.json() for a in answers] == [[i + 1.0] for i in range(4)] + [[6.0]]


def test_app_batches_async_functions():
    service = Batched()
    answers = run(_post_all(create_app(service), [("/async_double", {"json": i}) for i in range(10)]))
    assert [a.json() for a in answers] == [i * 2 for i in range(10)]
    assert max(service.calls) > 1


def test_a_wrong_length_result_fails_the_whole_batch_with_one_logged_error():
    answers = run(_post_all(create_app(Faulty()), [("/wrong_length", {"json": i}) for i in range(5)]))
    failed = [a for a in answers if a.status_code == 500]
    assert failed
    assert len({a.json()["error_id"] for a in failed}) < len(failed)  # callers of a batch share one id


def test_app_answers_503_when_the_budget_cannot_be_met_and_reports_batches():
    service = Batched()
    app = create_app(service)
    answers = run(_post_all(app, [("/tight", {"json": i}) for i in range(16)]))
    statuses = [a.status_code for a in answers]
    assert 200 in statuses and 503 in statuses and set(statuses) == {200, 503}
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 503)
    assert max(service.calls) <= 4

    async def metrics():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/metrics")).text

    text = run(metrics())
    assert f'bentolite_batch_size_count{{api="tight"}} {len(service.calls)}.0' in text
    assert 'bentolite_requests_total{api="tight",status="503"}' in text
    assert 'bentolite_batch_limit{api="tight"}' in text
