"""One socket write per answer (bentolite/server/joined_writes.py): the bytes a client gets are
exactly the bytes written, in order, whatever the sequence of writes, flushes and loop steps;
an API answer leaves in one write on both protocols, on a real uvicorn server on loopback; what
is held never waits past the loop step (``100 Continue``), a close or a large body."""

from __future__ import annotations

import asyncio
import functools
import json
import socket

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import uvicorn_in_thread
from server_services import Faulty

import bentolite.server.protocol as protocol_module
from bentolite.server import create_app
from bentolite.server.joined_writes import HOLD_LIMIT, JoiningTransport
from bentolite.server.protocol import BoundedH11Protocol, HttpToolsProtocol, protocol_factory


class _Counting:
    """A real transport, with the writes made to it counted."""

    def __init__(self, transport: asyncio.Transport, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name):
        return getattr(self._transport, name)


# --- the transport alone, over a real loopback connection ----------------------------------------
class _Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


_SIZES = st.one_of(st.integers(0, 300), st.integers(HOLD_LIMIT - 300, HOLD_LIMIT + 300))
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), _SIZES, st.sampled_from(["bytes", "bytearray", "memoryview"])),
        st.tuples(st.just("flush")),
        st.tuples(st.just("step")),
        st.tuples(st.just("writelines"), st.lists(st.integers(0, 200), max_size=4)),
    ),
    max_size=25,
)


async def _run_program(ops: list[tuple]) -> tuple[bytes, bytes, list[int]]:
    loop = asyncio.get_running_loop()
    collectors: list[_Collect] = []

    def make() -> _Collect:
        collectors.append(_Collect())
        return collectors[-1]

    server = await loop.create_server(make, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    writes: list[int] = []
    joined = JoiningTransport(_Counting(transport, writes), loop)  # type: ignore[arg-type]
    expected = bytearray()
    counter = 0

    def payload(size: int) -> bytes:
        nonlocal counter
        counter += 1
        return bytes((counter + i) % 251 for i in range(size))

    for op in ops:
        if op[0] == "write":
            data = payload(op[1])
            expected += data
            if op[2] == "bytes":
                joined.write(data)
            elif op[2] == "bytearray":
                buffer = bytearray(data)
                joined.write(buffer)
                buffer[:] = b"x" * len(buffer)  # reused by the caller once write returns
            else:
                joined.write(memoryview(data))
        elif op[0] == "writelines":
            parts = [payload(size) for size in op[1]]
            expected += b"".join(parts)
            joined.writelines(parts)
        elif op[0] == "flush":
            joined.flush()
            assert joined.get_write_buffer_size() == transport.get_write_buffer_size()
        else:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            # the loop step ended: nothing is held any more
            assert joined.get_write_buffer_size() == transport.get_write_buffer_size()
    joined.close()
    await asyncio.wait_for(collectors[0].closed, 10)
    server.close()
    await server.wait_closed()
    return bytes(collectors[0].received), bytes(expected), writes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS)
def test_the_peer_receives_every_byte_in_order_in_no_more_writes_than_were_made(ops):
    received, expected, writes = asyncio.run(_run_program(ops))
    large = {op[1] for op in ops if op[0] == "write" and op[1] >= HOLD_LIMIT}
    assert received == expected
    assert sum(writes) == len(expected)
    made = sum(1 for op in ops if op[0] == "write") + sum(len(op[1]) for op in ops if op[0] == "writelines")
    assert len(writes) <= made
    # at most two small writes joined into one
    assert all(size < 2 * HOLD_LIMIT or size in large for size in writes)


def test_a_head_leaves_with_its_body_a_lone_write_at_the_step_end_and_a_large_one_uncopied():
    async def run() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        writes: list[int] = []
        joined = JoiningTransport(_Counting(transport, writes), loop)  # type: ignore[arg-type]
        seen = []
        joined.write(b"head\r\n\r\n")
        seen.append(list(writes))  # the head waits for the body
        joined.write(b"body")
        seen.append(list(writes))  # and leaves with it, at once
        joined.write(b"lone")
        seen.append(list(writes))
        await asyncio.sleep(0)
        seen.append(list(writes))  # the step ended
        writes.clear()
        joined.write(b"x" * HOLD_LIMIT)
        joined.write(b"head")
        joined.write(b"y" * HOLD_LIMIT)
        seen.append(list(writes))
        joined.abort()
        server.close()
        return seen

    held, joined, lone, stepped, large = asyncio.run(run())
    assert held == []
    assert joined == [len(b"head\r\n\r\nbody")]
    assert lone == joined
    assert stepped == [*joined, len(b"lone")]
    assert large == [HOLD_LIMIT, len(b"head"), HOLD_LIMIT]


# --- a real uvicorn server, both protocols ----------------------------------------------------------
def _protocols():
    yield pytest.param(functools.partial(BoundedH11Protocol, header_timeout=5.0), id="h11")
    if HttpToolsProtocol is not None:
        yield pytest.param(protocol_factory(5.0, 8192), id="httptools")


@pytest.fixture(params=list(_protocols()))
def served(request, monkeypatch):
    """(port, the sizes of the writes the server made to its sockets)."""
    writes: list[int] = []

    class CountingJoiningTransport(JoiningTransport):
        def __init__(self, transport, loop) -> None:
            super().__init__(_Counting(transport, writes), loop)  # type: ignore[arg-type]

    monkeypatch.setattr(protocol_module, "JoiningTransport", CountingJoiningTransport)
    config = uvicorn.Config(
        create_app(Faulty()),
        host="127.0.0.1",
        port=0,
        http=request.param,
        log_level="warning",
        access_log=False,
    )
    with uvicorn_in_thread(config) as port:
        yield port, writes


def _post(body: bytes, *extra: bytes) -> bytes:
    head = b"POST /ok HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(
        body
    )
    return head + b"".join(extra) + b"\r\n" + body


def _read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    received = b""
    answers = []
    while len(answers) < count:
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            head = received[:head_end]
            lines = head.lower().split(b"\r\n")
            length = int(next(line for line in lines if line.startswith(b"content-length:")).split(b":")[1])
            if len(received) >= head_end + 4 + length:
                body = received[head_end + 4 : head_end + 4 + length]
                answers.append((int(head.split()[1]), body))
                received = received[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {len(answers)} answers"
        received += chunk
    return answers


def test_an_api_answer_leaves_in_one_write(served):
    port, writes = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for value in ([1, 2, 3], {"a": "b"}, "text"):
            writes.clear()
            body = json.dumps(value).encode()
            sock.sendall(_post(body))
            [(status, answer)] = _read_answers(sock, 1)
            assert status == 200 and json.loads(answer) == value
            assert len(writes) == 1, writes


def test_pipelined_requests_get_their_own_answers_in_order(served):
    port, writes = served
    values = [[index, "x" * index] for index in range(5)]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(_post(json.dumps(value).encode()) for value in values))
        answers = _read_answers(sock, len(values))
    assert [json.loads(body) for _, body in answers] == values
    assert len(writes) == len(values)


def test_a_large_answer_arrives_whole(served):
    port, _ = served
    value = ["y" * 1000] * (3 * HOLD_LIMIT // 1000)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_post(json.dumps(value).encode()))
        [(status, answer)] = _read_answers(sock, 1)
    assert status == 200 and json.loads(answer) == value


def test_100_continue_is_sent_before_the_body_arrives(served):
    port, _ = served
    body = json.dumps([7]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = _post(body, b"Expect: 100-continue\r\n")[: -len(body)]
        sock.sendall(head)  # the head alone: the body once the server says to go on
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before 100 Continue"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 ")
        rest = interim.partition(b"\r\n\r\n")[2]
        sock.sendall(body)
        received = rest
        while b"[7]" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")


def test_a_closing_answer_is_written_before_the_close(served):
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_post(b"[5]", b"Connection: close\r\n"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"[5]")


def test_an_answer_without_a_body_is_sent_and_the_connection_serves_on(served):
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HEAD /livez HTTP/1.1\r\nHost: t\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before the answer to HEAD"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\n")
        sock.sendall(_post(b"[9]"))
        [(status, answer)] = _read_answers(sock, 1)
    assert status == 200 and answer == b"[9]"
