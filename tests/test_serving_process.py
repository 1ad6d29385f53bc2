"""A serving process exempts what loading its service made from garbage collection (``gc.freeze``),
so a full collection walks none of it: the HTTP worker and the Clipper container both do it
once the service is loaded, and library calls in a user's own process never do."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clipper_peer import ClipperPeer
from live_server import Server

from bentolite.clipper.protocol import InputType
from bentolite.server.app import create_app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TARGET = str(FIXTURES / "gc_services.py:svc")

pytestmark = pytest.mark.timeout(90)


def test_the_http_worker_freezes_the_loaded_service(tmp_path):
    server = Server(TARGET, home=tmp_path, log=tmp_path / "server.log")
    try:
        answer = server.post("/frozen", json={}).json()
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert answer["pid"] != os.getpid()
    # numpy, pandas, starlette and the service itself: tens of thousands of objects
    assert answer["frozen"] > 10_000


def test_the_clipper_container_freezes_the_loaded_service(tmp_path):
    sys.path.insert(0, str(FIXTURES))
    try:
        import gc_services
    finally:
        sys.path.remove(str(FIXTURES))
    bundle = gc_services.FrozenCount().save_to_dir(tmp_path / "bundle")
    with ClipperPeer(port=0) as peer:
        env = {
            **os.environ,
            "CLIPPER_MODEL_NAME": "frozen",
            "CLIPPER_MODEL_VERSION": "1",
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(peer.port),
            "BENTOLITE_READY_FILE": "",
            "BENTOLITE_API": "frozen_clipper",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bentolite.clipper", str(bundle)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            peer.wait_for_registration(30)
            (output,) = peer.predict([b"x"], InputType.STRINGS)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert int(output) > 10_000


def test_building_an_app_in_a_users_process_leaves_its_collector_alone():
    sys.path.insert(0, str(FIXTURES))
    try:
        import gc_services
    finally:
        sys.path.remove(str(FIXTURES))
    before = gc.get_freeze_count()
    create_app(gc_services.FrozenCount())
    assert gc.get_freeze_count() == before
