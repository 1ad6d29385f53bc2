"""The requests read in one turn of the event loop start oldest-waiting connection first
(bentolite/server/fair_start.py): generated turns on a real event loop, and a real uvicorn server
on loopback whose loop is held while requests arrive in the reverse order of readiness."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import uvicorn_in_thread

from bentolite.server.fair_start import FairStart
from bentolite.server.protocol import HttpToolsProtocol, protocol_factory

# --- FairStart on its own ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(st.lists(st.integers(0, 1000), max_size=12, unique=True), min_size=1, max_size=5))
def test_each_turns_starts_run_in_the_order_of_readiness(turns):
    async def main() -> list[list[int]]:
        fair = FairStart()
        loop = asyncio.get_running_loop()
        started: list[list[int]] = []
        for turn in turns:
            run: list[int] = []
            started.append(run)
            for readiness in turn:
                fair.start(loop, readiness, run.append, readiness)
            assert run == []  # nothing starts before the turn ends
            await asyncio.sleep(0)  # the turn ends: its starts run
            await asyncio.sleep(0)
        return started

    assert asyncio.run(main()) == [sorted(turn) for turn in turns]


def test_a_start_that_fails_leaves_the_others_to_start_in_order():
    async def main() -> list[int]:
        fair = FairStart()
        loop = asyncio.get_running_loop()
        errors: list[object] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        started: list[int] = []

        def fail(readiness: int) -> None:
            raise RuntimeError(f"start {readiness} failed")

        for readiness in (5, 1, 3, 2, 4):
            fair.start(loop, readiness, fail if readiness == 2 else started.append, readiness)
        for _ in range(4):
            await asyncio.sleep(0)
        assert [str(e) for e in errors] == ["start 2 failed"]
        return started

    assert asyncio.run(main()) == [1, 3, 4, 5]


def test_readiness_numbers_grow():
    first, second = FairStart.ready(), FairStart.ready()
    assert first < second


# --- on a real server --------------------------------------------------------------------------

pytestmark_httptools = pytest.mark.skipif(HttpToolsProtocol is None, reason="httptools is not installed")

CONNECTIONS = 8


def _counting_app():
    """An ASGI app answering each request with the order in which it started."""
    count = iter(range(1_000_000))

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        number = next(count)
        while (await receive()).get("more_body"):
            pass
        body = str(number).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class _LoopSeen:
    """Wraps a protocol factory to note the event loop the server's connections run on."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, *args, **kwargs):
        protocol = self.factory(*args, **kwargs)
        self.loop = protocol.loop
        return protocol


_REQUEST = b"GET /n HTTP/1.1\r\nhost: t\r\n\r\n"


def _answer(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return int(body)


def _start_order(factory) -> list[int]:
    """Each connection's start number for requests sent while the server's loop was held, in
    the reverse order of the connections' readiness (connection 0 readied first)."""
    seen = _LoopSeen(factory)
    config = uvicorn.Config(
        _counting_app(), host="127.0.0.1", port=0, http=seen, log_level="warning", access_log=False
    )
    with uvicorn_in_thread(config) as port:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
        try:
            for sock in socks:  # one answer each, in turn: connection i is readied i-th
                sock.sendall(_REQUEST)
                _answer(sock)
            assert seen.loop is not None
            held = threading.Event()

            def hold() -> None:
                held.set()
                time.sleep(0.5)

            seen.loop.call_soon_threadsafe(hold)
            assert held.wait(5)
            for sock in reversed(socks):  # they arrive newest-ready first, all in one turn
                sock.sendall(_REQUEST)
                time.sleep(0.002)
            return [_answer(sock) for sock in socks]
        finally:
            for sock in socks:
                sock.close()


@pytestmark_httptools
def test_requests_read_in_one_turn_start_oldest_waiting_connection_first():
    numbers = _start_order(protocol_factory(5.0, 8192))
    assert numbers == sorted(numbers), numbers


@pytestmark_httptools
def test_without_fair_start_the_sockets_order_decides():
    """The control: the same requests without a FairStart do not start in readiness order, so
    the test above shows what FairStart changes."""
    from bentolite.server.protocol import BoundedHttpToolsProtocol

    def unfair(*args, **kwargs):
        return BoundedHttpToolsProtocol(*args, header_timeout=5.0, max_header_size=8192, **kwargs)

    numbers = _start_order(unfair)
    assert numbers != sorted(numbers), numbers


@pytestmark_httptools
def test_uvicorn_still_starts_requests_where_the_protocol_orders_them():
    """uvicorn 0.45 and later start each request in ``_start_asgi_task``, which the protocol
    overrides; a uvicorn that stops calling it would silently lose the order."""
    assert hasattr(HttpToolsProtocol, "_start_asgi_task")
