"""A real ``bentolite serve`` child process on a free loopback port, for tests that need one."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

CLI = [sys.executable, "-c", "from bentolite.cli import main; main()"]


@contextmanager
def uvicorn_in_thread(config) -> Iterator[int]:
    """A uvicorn server of ``config`` (``port=0``) running in a thread of this process; its port."""
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``bentolite serve TARGET --port <free port> ...`` in a child process.

    ``env`` adds environment variables; with ``port_env`` the port is given in that variable
    (``PORT``, ``BENTOLITE_PORT``) instead of ``--port``; ``cli`` is the command that runs the
    CLI.
    """

    def __init__(
        self,
        target: str,
        *options: str,
        home: Path,
        log: Path,
        env: dict[str, str] | None = None,
        port_env: str | None = None,
        cli: list[str] = CLI,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "BENTOLITE_HOME": str(home), **(env or {})}
        port_option = ["--port", str(self.port)]
        if port_env:
            env[port_env] = str(self.port)
            port_option = []
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [*cli, "serve", target, *port_option, *options],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready:\n{self.log.read_text()}")

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base + path, **{"timeout": 10, **kwargs})

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.base + path, **{"timeout": 10, **kwargs})

    def in_flight(self, api: str) -> float:
        match = re.search(
            rf'^bentolite_requests_in_flight{{api="{api}"}} (\S+)$', self.get("/metrics").text, re.M
        )
        return float(match.group(1)) if match else 0.0

    def wait_in_flight(self, api: str, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` requests to ``api`` are in flight."""
        deadline = time.monotonic() + timeout
        while self.in_flight(api) < count:
            assert time.monotonic() < deadline, f"{count} request(s) to {api} never arrived"
            time.sleep(0.02)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
