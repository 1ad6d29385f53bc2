"""A headless Chromium driven over the Chrome DevTools Protocol (a websocket), for browser tests.

Chromium is Debian's ``chromium`` package; the protocol client is ``websocket-client``. Only the
few commands the tests need: navigate, evaluate JavaScript, take a screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

#: flags for a headless browser in a container, with no network of its own beyond loopback
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # a small /dev/shm (as in containers) must not stall it
    "--window-size=1280,2000",
)
#: launches tried before giving up: a loaded machine has seen a start stall with no error
LAUNCHES = 2


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless Chromium with a fresh profile, and a DevTools session on its first page."""

    def __init__(self, executable: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)
        failures = []
        for _ in range(LAUNCHES):
            self._launch(executable)
            try:
                self.socket = websocket.create_connection(self._page_socket_url(), timeout=timeout)
                return
            except TimeoutError as exc:
                failures.append(str(exc))
                self.close()
            except BaseException:
                self.close()
                raise
        raise TimeoutError("\n".join(failures))

    def _launch(self, executable: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="bentolite-chromium-"))
        self.log = self.profile / "chromium.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [
                    executable,
                    *FLAGS,
                    f"--user-data-dir={self.profile}",
                    "--remote-debugging-port=0",  # Chromium picks a free port and writes it down
                    "about:blank",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _page_socket_url(self) -> str:
        """The websocket of the first page, once Chromium has written its DevTools port."""
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}:\n{self.log.read_text()}")
            if port_file.is_file() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                    pages = [t for t in json.load(reply) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise TimeoutError(f"chromium did not open its DevTools port:\n{self.log.read_text()}")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; returns its result (events arriving meanwhile are dropped)."""
        message_id = next(self._ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Evaluate ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"still false after {timeout or self.timeout} s: {expression}")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
