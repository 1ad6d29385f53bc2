"""What Clipper's Kubernetes manager does to a model container, checked here: a frontend host name
that does not resolve yet (a service still being created) is retried and logged once."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from clipper_peer import ClipperPeer

from bentolite.clipper import runtime as runtime_module
from bentolite.clipper.protocol import InputType
from bentolite.clipper.runtime import ClipperRuntime

FRONTEND_NAME = "query-frontend-0-at-bentolite-test"


def echo(frames: list[bytes]) -> list[str]:
    return [str(len(f)) for f in frames]


@pytest.mark.timeout(30)
def test_unresolvable_frontend_name_is_retried_and_logged_once(monkeypatch, caplog) -> None:
    # The machine's resolver cannot be changed from a test, so the name's resolution is
    # played here: unknown for its first lookups, then the peer's loopback address. The real
    # resolver inside a container is exercised by the docker test below.
    failures = 4
    lookups: list[str] = []
    real_lookup = socket.gethostbyname

    def lookup(name: str) -> str:
        if name != FRONTEND_NAME:
            return real_lookup(name)
        lookups.append(name)
        if len(lookups) <= failures:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return "127.0.0.1"

    monkeypatch.setattr(runtime_module.socket, "gethostbyname", lookup)
    monkeypatch.setattr(runtime_module, "RESOLVE_RETRY", 0.2)
    with ClipperPeer(port=0) as peer:
        runtime = ClipperRuntime(
            echo,
            model_name="m",
            model_version="1",
            input_type=InputType.BYTES,
            host=FRONTEND_NAME,
            port=peer.port,
            ready_file=None,
        )
        thread = threading.Thread(target=runtime.run, daemon=True)
        with caplog.at_level(logging.INFO, logger="bentolite.clipper.runtime"):
            thread.start()
            try:
                registration = peer.wait_for_registration(10)
                assert peer.predict([b"abc"], InputType.BYTES) == [b"3"]
            finally:
                runtime.stop()
                thread.join(5)
    assert (registration.model_name, registration.model_version) == ("m", "1")
    assert len(lookups) == failures + 1 and runtime.sessions == 1
    messages = [r.getMessage() for r in caplog.records]
    unresolved = [m for m in messages if "cannot resolve Clipper host" in m]
    assert unresolved == [
        f"cannot resolve Clipper host {FRONTEND_NAME!r} ([Errno -2] Name or service not known); "
        "retrying every 0.2 s"
    ]
    assert [m for m in messages if m.startswith(f"resolved Clipper host {FRONTEND_NAME!r} to 127.0.0.1")]
