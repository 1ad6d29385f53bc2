"""An API's whole answer in one message (bentolite/server/answer_cycle.py), on real uvicorn
servers over httptools on loopback: for generated requests (APIs, bodies around the size that is
written apart, kept-alive or closing connections, HTTP/1.0, pipelining), a client gets exactly the
bytes of uvicorn's own two-message path, the date aside; API answers take the one message; a
client that does not read holds the server back without losing an answer; uvicorn's access log,
when on, still sees every answer."""

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

import bentolite.server.protocol as protocol_module
from bentolite.server import create_app
from bentolite.server.joined_writes import HOLD_LIMIT
from bentolite.server.protocol import HttpToolsProtocol, protocol_factory

pytestmark = pytest.mark.skipif(HttpToolsProtocol is None, reason="httptools is not installed")

if HttpToolsProtocol is not None:
    from bentolite.server.answer_cycle import WHOLE_ANSWER, AnswerCycle, valid_header_value
    from bentolite.server.protocol import BoundedHttpToolsProtocol

    class _TwoMessages(BoundedHttpToolsProtocol):
        """bentolite's protocol with the one-message answer turned off: uvicorn's own path."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._extensions = None

    #: the one-message answers the server of :class:`_OneMessage` wrote
    _whole_answers: list[int] = []

    class _RecordingCycle(AnswerCycle):
        async def send(self, message) -> None:
            if message["type"] == WHOLE_ANSWER:
                _whole_answers.append(message["status"])
            await super().send(message)

    class _OneMessage(BoundedHttpToolsProtocol):
        """bentolite's protocol, its one-message answers counted. A module's server is built
        before its tests run, and pytest then gives the access logger, which does not propagate,
        its capture handlers: the protocol would take uvicorn's access log for on and answer in
        two messages, so this one keeps the one message on, as ``bentolite serve`` has it."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._extensions = {WHOLE_ANSWER: {}}

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if type(self.cycle) is AnswerCycle:
                self.cycle.__class__ = _RecordingCycle


def _config(protocol) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(Faulty()), host="127.0.0.1", port=0, http=protocol, log_level="warning", access_log=False
    )


@pytest.fixture(scope="module")
def both():
    """(port of the server with one-message answers, port of the one without)."""
    one = functools.partial(_OneMessage, header_timeout=5.0, max_header_size=8192)
    two = functools.partial(_TwoMessages, header_timeout=5.0, max_header_size=8192)
    with uvicorn_in_thread(_config(one)) as one_port, uvicorn_in_thread(_config(two)) as two_port:
        yield one_port, two_port


def _request(path: str, body: bytes, request_id: str, version: str, connection: str | None) -> bytes:
    content_type = b"text/plain" if path == "/ping" else b"application/json"
    head = b"POST %s HTTP/%s\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Request-ID: %s\r\n" % (
        path.encode(),
        version.encode(),
        content_type,
        len(body),
        request_id.encode(),
    )
    if connection is not None:
        head += b"Connection: %s\r\n" % connection.encode()
    return head + b"\r\n" + body


def _answers(sock: socket.socket, count: int) -> bytes:
    """The bytes of ``count`` answers (each with a Content-Length), or up to the close."""
    received = b""
    done = 0
    offset = 0
    while done < count:
        head_end = received.find(b"\r\n\r\n", offset)
        if head_end >= 0:
            lines = received[offset:head_end].lower().split(b"\r\n")
            length = int(next(line for line in lines if line.startswith(b"content-length:")).split(b":")[1])
            if len(received) >= head_end + 4 + length:
                offset = head_end + 4 + length
                done += 1
                continue
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        received += chunk
    return received


def _exchange(port: int, data: bytes, count: int, close_expected: bool) -> tuple[bytes, bool]:
    """What the server answers to ``data`` (``count`` requests), with the date line removed, and
    whether it then closed the connection: waited for up to 2 s where a close is expected, so that
    a busy machine's slow close is not taken for none, yet well before uvicorn's keep-alive
    timeout (5 s) would close an idle connection anyway; 0.3 s otherwise."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = _answers(sock, count)
        sock.settimeout(2 if close_expected else 0.3)
        try:
            closed = sock.recv(1) == b""
        except socket.timeout:
            closed = False
    lines = [line for line in received.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines), closed


_IDS = st.text("abcXYZ0189._~:@+=/-", min_size=1, max_size=40)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
_BODIES = st.one_of(
    st.tuples(st.just("/ok"), _JSON.map(lambda v: json.dumps(v).encode())),
    # an answer either side of the size written apart from its head
    st.tuples(
        st.just("/ok"),
        st.integers(HOLD_LIMIT - 200, HOLD_LIMIT + 200).map(lambda n: json.dumps("z" * n).encode()),
    ),
    st.tuples(st.just("/ping"), st.text(max_size=50).map(str.encode)),
    st.tuples(st.just("/rejects"), st.just(b"1")),  # an error: the two-message path on both
    st.tuples(st.just("/ok"), st.just(b"{not json")),
)
_CONNECTIONS = st.sampled_from([("1.1", None), ("1.1", "close"), ("1.0", None), ("1.0", "keep-alive")])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(requests=st.lists(st.tuples(_BODIES, _IDS), min_size=1, max_size=3), connection=_CONNECTIONS)
def test_a_client_gets_the_bytes_of_uvicorns_own_path(both, requests, connection):
    one_port, two_port = both
    version, header = connection
    kept_alive = version == "1.1" and header != "close"  # uvicorn keeps no HTTP/1.0 connection
    if not kept_alive:  # a closing answer ends the connection: nothing is pipelined after it
        requests = requests[:1]
    data = b"".join(_request(path, body, rid, version, header) for (path, body), rid in requests)
    count = len(requests)
    _whole_answers.clear()
    one, one_closed = _exchange(one_port, data, count, not kept_alive)
    two, two_closed = _exchange(two_port, data, count, not kept_alive)
    assert one == two
    assert one_closed == two_closed == (not kept_alive)
    assert one.count(b"HTTP/1.1 ") == count
    # every API answer (the 200s) went in the one message; the errors in uvicorn's two
    assert _whole_answers == [200] * one.count(b"HTTP/1.1 200 ")


def test_api_answers_take_the_one_message(monkeypatch):
    seen: list[str] = []

    class Recording(AnswerCycle):
        async def send(self, message) -> None:
            seen.append(message["type"])
            await super().send(message)

    monkeypatch.setattr(protocol_module, "AnswerCycle", Recording)
    with uvicorn_in_thread(_config(protocol_factory(5.0, 8192))) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                _request("/ok", b"[1]", "a", "1.1", None) + _request("/rejects", b"1", "b", "1.1", None)
            )
            received = _answers(sock, 2)
    assert received.count(b"HTTP/1.1 200 ") == 1 and received.count(b"HTTP/1.1 400 ") == 1
    # the API's answer in one message; the error (a Starlette response) in uvicorn's two
    assert seen == [WHOLE_ANSWER, "http.response.start", "http.response.body"]


def test_a_client_that_does_not_read_holds_the_server_back_and_gets_every_answer():
    values = [[index, "w" * 150_000] for index in range(24)]  # 3.6 MB of answers, unread at first
    with uvicorn_in_thread(_config(protocol_factory(5.0, 8192))) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.sendall(
                b"".join(
                    _request("/ok", json.dumps(v).encode(), str(i), "1.1", None) for i, v in enumerate(values)
                )
            )
            socket.socket.recv(sock, 1, socket.MSG_PEEK)  # the first answer began; the rest waits
            received = _answers(sock, len(values))
    bodies = [part.partition(b"\r\n\r\n")[2] for part in received.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert [json.loads(body) for body in bodies] == values


def test_uvicorns_access_log_when_on_sees_every_answer():
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    with uvicorn_in_thread(_config(protocol_factory(5.0, 8192))) as port:
        access = logging.getLogger("uvicorn.access")
        level = access.level
        access.setLevel(logging.INFO)
        access.addHandler(handler)  # before the connection: the protocol reads it when built
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(_request("/ok", b"[2]", "c", "1.1", None))
                assert b"[2]" in _answers(sock, 1)
        finally:
            access.removeHandler(handler)
            access.setLevel(level)
    assert any('"POST /ok HTTP/1.1" 200' in line for line in lines), lines


def test_the_header_value_check_is_uvicorns():
    from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE

    for byte in range(256):
        value = b"a" + bytes([byte]) + b"b"
        assert valid_header_value(value) == (HEADER_VALUE_RE.search(value) is None), byte
