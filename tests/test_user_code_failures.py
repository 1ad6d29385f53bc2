"""User code raising SystemExit, KeyboardInterrupt or another BaseException: a JSON 500 with an
error id, over a real server, which keeps serving."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from live_server import Server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
APIS = ("plain", "plain_async", "batched", "batched_async")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = Server(str(FIXTURES / "hostile_services.py:exits"), home=home, log=home / "server.log")
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", ["exit", "interrupt", "base"])
def test_a_base_exception_is_a_json_500_and_the_server_keeps_serving(server, api, kind):
    response = server.post(f"/{api}", json=kind)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "detail", "error_id", "request_id"}
    assert body["error"] == f"API {api!r} failed"
    expected = {"exit": "SystemExit", "interrupt": "KeyboardInterrupt", "base": "_Custom"}[kind]
    assert body["detail"].startswith(expected)
    assert f"error id {body['error_id']}" in server.log.read_text()
    # the same process answers the next request, on every API
    assert server.process.poll() is None
    for other in APIS:
        assert server.post(f"/{other}", json=[1, 2]).json() == [1, 2]
