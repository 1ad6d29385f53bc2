"""Both HTTP protocols bentolite serves on (bentolite/server/protocol.py): httptools where it is
installed, h11 elsewhere; the same answers to a good request and to a bad head, on a real
uvicorn server on loopback."""

from __future__ import annotations

import functools
import json
import logging
import socket

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import uvicorn_in_thread
from server_services import Faulty

from bentolite.server import create_app
from bentolite.server.protocol import BoundedH11Protocol, HttpToolsProtocol, protocol_factory

HEADER_LIMIT = 4096


def _protocols():
    yield pytest.param(functools.partial(BoundedH11Protocol, header_timeout=5.0), id="h11")
    if HttpToolsProtocol is not None:
        yield pytest.param(protocol_factory(5.0, HEADER_LIMIT), id="httptools")


@pytest.fixture(params=list(_protocols()))
def port(request):
    config = uvicorn.Config(
        create_app(Faulty()),
        host="127.0.0.1",
        port=0,
        http=request.param,
        h11_max_incomplete_event_size=HEADER_LIMIT,
        log_level="warning",
        access_log=False,
    )
    with uvicorn_in_thread(config) as port:
        yield port


def exchange(port: int, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        headers = dict(
            line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
        )
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
    return int(head.split()[1]), headers, body


def test_a_request_is_answered_with_its_request_id(port):
    body = b"[1]"
    status, headers, answer = exchange(
        port,
        b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-ID: abc\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert (status, json.loads(answer), headers["x-request-id"]) == (200, [1], "abc")


def test_an_oversized_header_block_is_a_json_431(port):
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2**20 + b"\r\n\r\n"  # arrives in many reads
    status, _, answer = exchange(port, head)
    assert status == 431 and "header block" in json.loads(answer)["error"]


def test_a_malformed_head_is_a_json_400(port):
    status, _, answer = exchange(port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
    assert status == 400
    assert json.loads(answer)["error"] == "the request line or headers are not valid HTTP/1.1"


def _all_answers(port: int, data: bytes) -> bytes:
    """Everything the server sends on a connection until it closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # the server closed with unread bytes of ours
                break
            if not chunk:
                break
            received += chunk
    return received


def _ok_request(value: list[int], close: bool) -> bytes:
    body = json.dumps(value).encode()
    head = b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n" % len(body)
    return head + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.integers(0, 60_000),
    after=st.one_of(
        st.integers(0, 60_000).map(lambda n: _ok_request([7] * n, close=False)),
        st.binary(min_size=1, max_size=3000),
        st.integers(1, 200_000).map(lambda n: b"x" * n),
    ),
)
def test_what_follows_a_connection_close_request_does_not_change_its_answer(port, first, after):
    """RFC 9112 9.6: after a request with ``Connection: close`` the server answers it and closes;
    whatever the client sent after it (a pipelined request, bytes that are no HTTP) is not
    processed, and never turns the answer into an error."""
    errors = _ErrorRecords()
    uvicorn_logger = logging.getLogger("uvicorn.error")  # it does not propagate to pytest's
    uvicorn_logger.addHandler(errors)
    try:
        received = _all_answers(port, _ok_request([1] * first, close=True) + after)
    finally:
        uvicorn_logger.removeHandler(errors)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), received[:200]
    assert json.loads(body) == [1] * first
    assert received.count(b"HTTP/1.1 ") == 1
    assert errors.messages == []  # uvicorn's "Cannot call write() after write_eof()" among them


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
