"""``bentolite serve`` under its supervisor, with real processes: a worker killed by user code
(a segfault, ``os._exit``) is replaced and named in one log line with what it had in flight;
a worker that cannot start is not restarted forever, and the server exits 1 when none can."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from hostile_services import Crashes
from live_server import Server

from bentolite.bundle import save_bundle

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def server(tmp_path):
    server = Server(str(FIXTURES / "hostile_services.py:crashes"), home=tmp_path, log=tmp_path / "server.log")
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def answer(server: Server):
    try:
        return server.post("/crash", json="pid", timeout=2).json()
    except requests.ConnectionError:
        return None


@pytest.mark.parametrize(
    "how, ended", [("segfault", "was killed by SIGSEGV"), ("exit", "exited with status 7")]
)
def test_a_worker_killed_by_user_code_is_replaced_and_named(server, how, ended):
    before = answer(server)["pid"]
    with pytest.raises(requests.ConnectionError):
        server.post("/crash", json=how, headers={"X-Request-ID": f"req-{how}"})
    after = wait_for(lambda: answer(server))["pid"]
    assert after != before and server.process.poll() is None
    log = server.log.read_text()
    lines = [line for line in log.splitlines() if f"worker [{before}]" in line]
    assert len(lines) == 1 and "ERROR" in lines[0]
    assert lines[0].endswith(
        f"worker [{before}] {ended} while answering API 'crash' request req-{how}; starting another"
    )
    assert server.get("/readyz").status_code == 200


def test_a_request_without_an_id_gets_one_in_the_record(server):
    before = answer(server)["pid"]
    with pytest.raises(requests.ConnectionError):
        server.post("/crash", json="exit")
    wait_for(lambda: answer(server))
    line = next(line for line in server.log.read_text().splitlines() if f"worker [{before}]" in line)
    # the id the server gave the request, as its access log and error bodies show it
    assert re.search(r"while answering API 'crash' request [0-9a-f]{32}; starting another$", line)


def test_workers_that_cannot_start_are_given_up_and_the_server_exits_1(tmp_path):
    bundle = save_bundle(Crashes(), version="1", target=tmp_path / "bundle", lock=False)
    server = Server(str(bundle), "--workers", "2", home=tmp_path, log=tmp_path / "server.log")
    try:
        shutil.rmtree(bundle)  # from now on, no worker can load the service
        started = time.monotonic()
        for _ in range(20):  # each request kills the worker that takes it
            if server.process.poll() is not None:
                break
            try:
                server.post("/crash", json="exit", timeout=2)
            except requests.RequestException:  # reset by the dying worker, or no worker left
                pass
            time.sleep(0.3)
        status = server.process.wait(timeout=40)
        assert status == 1
        assert time.monotonic() - started < 40
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    log = server.log.read_text()
    assert log.count("before serving, 3 times in a row; not starting it again") == 2
    assert "no worker could start; the server stops" in log
    assert "cannot load the service" in log and "Traceback" not in log


def test_sigterm_stops_the_supervisor_and_its_workers(tmp_path):
    server = Server(
        str(FIXTURES / "hostile_services.py:crashes"), "--workers", "2", home=tmp_path, log=tmp_path / "log"
    )
    pids = {answer(server)["pid"] for _ in range(10)}
    assert server.stop() == 0
    for pid in pids:
        assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
