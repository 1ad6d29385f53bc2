"""Clients that send their request head too slowly or too large, against a real server:
408 past the header deadline, 414 for a huge URL, 431 for a huge header block, each as JSON
and read by the client (not a reset), and the server answers the next client. Each test runs
on both HTTP parsers: httptools, and h11 (what serves where httptools is not installed)."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
import requests
from live_server import CLI, Server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TIMEOUT = 1.0
#: the CLI as it runs where httptools is missing: the supervisor picks the h11 protocol
H11_CLI = [
    CLI[0],
    "-c",
    "import bentolite.server.protocol as p\np.HttpToolsProtocol = None\n"
    "from bentolite.cli import main\nmain()",
]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = Server(
        str(FIXTURES / "hostile_services.py:bounded"),
        "--header-timeout",
        str(TIMEOUT),
        home=home,
        log=home / "server.log",
        cli=CLI if request.param == "httptools" else H11_CLI,
    )
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


def assert_still_serving(server: Server) -> None:
    assert server.post("/echo", json=[1]).json() == [1]


def read_answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


def test_a_one_megabyte_url_is_a_414(server):
    response = requests.get(f"{server.base}/{'a' * 2**20}", timeout=10)
    assert response.status_code == 414
    assert response.json()["error"] == "the request line is over the server's limit of 32768 bytes"
    assert_still_serving(server)


@pytest.mark.parametrize("headers", [{"x-big": "b" * 2**20}, {f"x-{i}": "b" * 100 for i in range(10_000)}])
def test_a_one_megabyte_header_block_is_a_431(server, headers):
    response = requests.post(f"{server.base}/echo", json=[1], headers=headers, timeout=10)
    assert response.status_code == 431
    assert response.json() == {
        "error": "the request's header block is over the server's limit of 32768 bytes",
        "detail": "the bound is bentolite serve --max-header-size",
    }
    assert_still_serving(server)


def test_a_malformed_head_is_a_json_400(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nno colon in this line\r\n\r\n")
        status, body = read_answer(sock)
    assert status == 400 and body["error"] == "the request line or headers are not valid HTTP/1.1"
    assert_still_serving(server)


def test_a_head_sent_byte_by_byte_is_cut_at_the_deadline(server):
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: y\r\n" * 200
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        try:
            for byte in head:
                sock.send(bytes([byte]))
                time.sleep(0.01)
                assert time.monotonic() - started < TIMEOUT + 5, "the server never cut the connection"
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = read_answer(sock)
    assert status == 408
    assert body["error"] == f"the request line and headers did not arrive within {TIMEOUT:g} s"
    assert time.monotonic() - started < TIMEOUT + 4  # the deadline, then at most the linger
    assert_still_serving(server)


def test_the_deadline_applies_to_each_request_of_a_kept_alive_connection(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3\r\n\r\n[2]"
        )
        assert read_answer(sock) == (200, [2])
        time.sleep(TIMEOUT * 0.8)  # idle between requests: the keep-alive timer's business
        sock.sendall(b"POST /echo HTTP/1.1\r\n")  # ... and never the rest
        started = time.monotonic()
        status, _ = read_answer(sock)
        assert status == 408 and time.monotonic() - started < TIMEOUT + 1


def test_a_busy_kept_alive_connection_outlives_the_deadline(server):
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[3]"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started, answered = time.monotonic(), 0
        while time.monotonic() - started < TIMEOUT * 2.5:  # each request whole in one write
            sock.sendall(request)
            assert read_answer(sock) == (200, [3])
            answered += 1
            time.sleep(0.01)
    assert answered > 20


def test_an_idle_connection_is_closed_silently(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT + 3) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert TIMEOUT * 0.9 < time.monotonic() - started < TIMEOUT + 2
    assert_still_serving(server)
