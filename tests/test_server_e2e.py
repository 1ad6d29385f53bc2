"""``bentolite serve`` as a real uvicorn server on a free loopback port, driven over TCP."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from live_server import Server
from sample_services import IrisClassifier

from bentolite.bundle import save_bundle

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def iris_server(iris_model, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    service = IrisClassifier().pack("model", iris_model[0])
    save_bundle(service, version="1.0", target=home / "bundles" / "IrisClassifier" / "1.0", lock=False)
    server = Server("IrisClassifier:latest", "--max-body-size", "2KB", home=home, log=home / "server.log")
    yield server
    server.stop()


def test_bundle_served_by_tag_answers_every_route(iris_server, iris_model):
    _, X = iris_model
    index = iris_server.get("/").json()
    assert index["name"] == "IrisClassifier" and index["version"] == "1.0"
    assert iris_server.get("/healthz").status_code == 200
    assert iris_server.get("/livez").json()["status"] == "ok"
    assert iris_server.get("/readyz").json()["status"] == "ok"
    assert iris_server.post("/predict", json=X[:3].tolist()).json() == [0, 0, 0]
    csv = "a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in X[[0, 100]])
    assert iris_server.post("/predict", data=csv, headers={"Content-Type": "text/csv"}).json() == [0, 2]
    spec = iris_server.get("/docs.json").json()
    assert {"/predict", "/predict_clipper", "/predict_clipper/predict"} <= set(spec["paths"])
    assert "swagger-ui" in iris_server.get("/docs").text  # the redirect is followed to /docs/
    assert iris_server.get("/docs/swagger-ui.css").status_code == 200
    assert 'bentolite_requests_total{api="predict",status="200"}' in iris_server.get("/metrics").text


def test_a_clipper_client_works_unchanged(iris_server, iris_model):
    _, X = iris_model
    # what a client of a Clipper application sends to <frontend>/<app>/predict
    one = iris_server.post("/predict_clipper/predict", json={"input": X[0].tolist()}).json()
    assert set(one) == {"query_id", "output", "default"} and one["output"] == 0 and one["default"] is False
    batch = iris_server.post("/predict_clipper", json={"input_batch": X[[0, 50, 100]].tolist()}).json()
    assert [p["output"] for p in batch["batch_predictions"]] == [0, 1, 2]


def test_every_client_error_has_its_status(iris_server):
    assert (
        iris_server.post("/predict", data=b"{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert iris_server.post("/predict_clipper", json={"input": "abc"}).status_code == 400
    assert iris_server.post("/nope", json=[]).status_code == 404
    assert iris_server.get("/predict").status_code == 405
    too_big = iris_server.post(
        "/predict", data=b"[" + b"1," * 2000 + b"1]", headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413
    assert iris_server.post("/predict", data=b"x", headers={"Content-Type": "image/png"}).status_code == 415
    for response in (too_big, iris_server.post("/nope")):
        assert set(response.json()) == {"error", "detail", "request_id"}


def test_a_failing_api_is_a_logged_500_and_the_server_keeps_serving(tmp_path):
    server = Server(str(FIXTURES / "server_services.py:faulty"), home=tmp_path, log=tmp_path / "log")
    try:
        response = server.post("/boom", json=1)
        assert response.status_code == 500
        error_id = response.json()["error_id"]
        assert server.post("/ok", json=5).json() == 5
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    log = server.log.read_text()
    assert f"error id {error_id}" in log and "RuntimeError: secret internals" in log


def test_sigterm_drains_the_request_in_flight(tmp_path):
    server = Server(str(FIXTURES / "server_services.py:slow"), home=tmp_path, log=tmp_path / "log")
    answers = []
    client = threading.Thread(target=lambda: answers.append(server.post("/sleep", json=1.5)))
    client.start()
    deadline = time.monotonic() + 10
    while server.in_flight("sleep") < 1:
        assert time.monotonic() < deadline, "the request never arrived"
        time.sleep(0.02)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):  # no new connections while draining
        requests.get(f"{server.base}/livez", timeout=1)
    client.join(timeout=10)
    assert answers and answers[0].status_code == 200 and answers[0].json()["slept"] == 1.5
    assert server.stop() in (0, -signal.SIGTERM)


def test_several_workers_share_the_port_and_their_metrics(tmp_path):
    server = Server(
        str(FIXTURES / "server_services.py:slow"), "--workers", "2", home=tmp_path, log=tmp_path / "log"
    )
    try:
        deadline = time.monotonic() + 30  # /readyz answers once one worker serves; wait for both
        while server.log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        for _ in range(6):
            assert server.post("/ping", data="x", headers={"Content-Type": "text/plain"}).json() == "pong"
        metrics = server.get("/metrics").text
        assert 'bentolite_requests_total{api="ping",status="200"} 6.0' in metrics
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert len(set(re.findall(r"Started server process \[(\d+)\]", server.log.read_text()))) == 2
