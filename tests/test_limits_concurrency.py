"""Work in flight per worker, against a real server: past --max-concurrency requests or
--max-inflight-bytes of bodies a request is a 503 with Retry-After; every other 503 carries
Retry-After too; the server answers again once the load is gone."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from live_server import Server

from bentolite.server.inflight import InFlight

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = Server(
        str(FIXTURES / "hostile_services.py:bounded"),
        "--max-concurrency",
        "2",
        "--max-inflight-bytes",
        "4KB",
        "--timeout",
        "3",
        home=home,
        log=home / "server.log",
    )
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


def hold_in_background(server: Server, api: str, count: int, body) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=server.post, args=(f"/{api}",), kwargs={"json": body}) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    server.wait_in_flight(api, count)
    return threads


def test_past_max_concurrency_a_request_is_a_503_with_retry_after(server):
    threads = hold_in_background(server, "hold", 2, 1.0)
    response = server.post("/echo", json=[1])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {
        "error": "the server is answering 2 requests already; retry shortly",
        "detail": "the bound is bentolite serve --max-concurrency (per worker)",
        "request_id": response.headers["x-request-id"],
    }
    assert server.get("/readyz").status_code == 200  # health routes are not API requests
    for thread in threads:
        thread.join()
    assert server.post("/echo", json=[1]).json() == [1]


def test_past_max_inflight_bytes_a_request_is_a_503_but_a_lone_one_is_served(server):
    big = {"seconds": 1.0, "pad": "p" * 3000}
    threads = hold_in_background(server, "hold_sync", 1, big)
    response = server.post("/echo", json={"pad": "q" * 3000})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["detail"] == "the bound is bentolite serve --max-inflight-bytes (per worker)"
    for thread in threads:
        thread.join()
    lone = {"pad": "r" * 6000}  # over the bound, but nothing else is in flight
    assert server.post("/echo", json=lone).json() == lone


def test_a_timeout_is_a_503_with_retry_after(server):
    response = server.post("/hold", json=5)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["detail"] == "raise it with bentolite serve --timeout"
    assert server.post("/echo", json=[2]).json() == [2]


@pytest.mark.parametrize(
    ("api", "body"),
    [("hold_sync", {"seconds": 5}), ("hold_batched", 5)],
    ids=["in the thread pool", "in a batch"],
)
def test_a_timeout_cuts_a_sync_call_and_a_batch_as_well(server, api, body):
    response = server.post(f"/{api}", json=body)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"] == f"API {api!r} did not answer within the server's timeout of 3 s"
    assert server.post("/echo", json=[3]).json() == [3]
    time.sleep(2.5)  # the cut call itself runs on (5 s): a batch after it waits for it no more
    quick = {"seconds": 0} if api == "hold_sync" else 0
    again = server.post(f"/{api}", json=quick)
    assert again.status_code == 200, again.text  # the API itself serves again


def test_slots_are_reused_and_bytes_released():
    in_flight = InFlight(2, 100)
    a = in_flight.enter(b"api", b"r1", 60)
    b = in_flight.enter(b"api", None, 0)
    assert {a, b} == {0, 1} and in_flight.count == 2
    in_flight.charge(b, 30)
    with pytest.raises(Exception, match="bytes of request bodies"):
        in_flight.charge(b, 50)
    in_flight.leave(a)
    in_flight.leave(b)
    assert in_flight.count == 0 and in_flight.bytes == 0
    assert in_flight.enter(b"api", b"r3", 1000) in (0, 1)  # alone: always admitted
