"""A model's life on a Clipper cluster, through the real ``clipper_admin.ClipperConnection``: a new
version takes the queries, a rollback, scaling to three replicas, a replica killed, the frontend
restarted during a stream of queries.

Model containers run on the real Docker engine; Clipper's frontends are played by
tests/clipper_cluster.py. The tests run in file order on one cluster, each step starting from
the state the previous one left. The stand-in drops a silent container after SILENCE seconds,
where Clipper's frontend waits 30 s: that only shortens the wait in the kill step.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from clipper_peer import wait_until

from bentolite import deploy_to_clipper

pytestmark = [pytest.mark.docker, pytest.mark.timeout(420)]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
API = "predict_clipper"
MODEL = "iris"
APP = "iris"
SETOSA = [5.1, 3.5, 1.4, 0.2]  # version 1 (the SVM) answers 0, version 2 (a constant model) 1
SILENCE = 8.0  # > the 5 s between a container's heartbeats, with room for a loaded machine

#: how long each step took, printed when the module ends (pytest -s shows it)
TIMINGS: dict[str, float] = {}


@dataclass
class Cluster:
    conn: Any
    manager: Any

    @property
    def frontend(self) -> Any:
        return self.manager.frontend

    def query(self, timeout: float = 30.0) -> dict[str, Any]:
        url = f"http://{self.conn.get_query_addr()}/{APP}/predict"
        return requests.post(url, json={"input": SETOSA}, timeout=timeout).json()

    def wait_for_output(self, expected: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.query()
            if not answer["default"] and answer["output"] == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"no answer {expected} within {timeout} s; last: {answer}")

    def live(self, version: str) -> list[Any]:
        registered = self.frontend.peer.registered()
        return [r for r in registered if (r.model_name, r.model_version) == (MODEL, version)]


@pytest.fixture(scope="module")
def constant_bundle(tmp_path_factory: pytest.TempPathFactory, iris_model) -> Path:
    """The iris example service packed with a model that answers 1 whatever it is asked."""
    from sklearn.dummy import DummyClassifier

    example = str(EXAMPLES / "iris_classifier")
    sys.path.insert(0, example)
    try:
        from iris_classifier import IrisClassifier

        model = DummyClassifier(strategy="constant", constant=1).fit(iris_model[1], [0, 1] * 75)
        svc = IrisClassifier().pack("model", model)
        return Path(svc.save_to_dir(tmp_path_factory.mktemp("constant") / "bundle"))
    finally:
        sys.path.remove(example)
        sys.modules.pop("iris_classifier", None)


@pytest.fixture(scope="module")
def cluster(docker_client, built_images, session_tag, iris_example_bundle) -> Iterator[Cluster]:
    """A cluster serving version 1 of the model (the iris SVM) to the application."""
    clipper_admin = pytest.importorskip("clipper_admin")
    from clipper_cluster import LocalContainerManager

    manager = LocalContainerManager(
        docker_client, cluster_name=f"bentolite-life-{session_tag}", silence_timeout=SILENCE
    )
    conn = clipper_admin.ClipperConnection(manager)
    conn.start_clipper()
    cluster = Cluster(conn, manager)
    try:
        started = time.monotonic()
        deploy_to_clipper(conn, iris_example_bundle, API, model_name=MODEL, model_version="1", app_name=APP)
        built_images.append(conn.get_model_info(MODEL, "1")["container_name"])
        cluster.wait_for_output(0)
        TIMINGS["deploy version 1 (build, start, register) until it answers"] = time.monotonic() - started
        yield cluster
    finally:
        conn.stop_all()
        assert not manager.containers()
        print("\nClipper model lifecycle, seconds per step:")
        for step, seconds in TIMINGS.items():
            print(f"  {seconds:6.2f}  {step}")


def _states(containers: list[Any]) -> dict[str, tuple[str, int]]:
    """Each container's start time and restart count, by id."""
    states = {}
    for container in containers:
        container.reload()
        states[container.id] = (container.attrs["State"]["StartedAt"], container.attrs["RestartCount"])
    return states


def test_a_new_version_takes_the_queries_and_the_old_one_keeps_running(
    cluster: Cluster, constant_bundle: Path, built_images
) -> None:
    (v1,) = cluster.manager.containers(MODEL, "1", running=True)
    v1_registration = cluster.live("1")[0]

    started = time.monotonic()
    assert deploy_to_clipper(
        cluster.conn, constant_bundle, API, model_name=MODEL, model_version="2", app_name=APP
    ) == (MODEL, "2")
    built_images.append(cluster.conn.get_model_info(MODEL, "2")["container_name"])
    cluster.wait_for_output(1)
    TIMINGS["deploy version 2 until queries get its answers"] = time.monotonic() - started

    answers = [cluster.query() for _ in range(10)]
    assert [(a["output"], a["default"]) for a in answers] == [(1, False)] * 10
    assert cluster.conn.get_model_info(MODEL, "2")["is_current_version"] is True
    assert cluster.conn.get_model_info(MODEL, "1")["is_current_version"] is False
    assert sorted(cluster.conn.get_all_models()) == [f"{MODEL}:1", f"{MODEL}:2"]
    assert cluster.conn.get_linked_models(APP) == [MODEL]
    v1.reload()
    assert v1.status == "running"
    assert cluster.live("1") == [v1_registration]  # still connected, never re-registered
    assert len(cluster.manager.containers(MODEL, "2", running=True)) == 1


def test_set_model_version_routes_back_without_restarting_any_container(cluster: Cluster) -> None:
    containers = cluster.manager.containers(running=True)
    assert len(containers) == 2
    before = _states(containers)
    registrations = len(cluster.frontend.peer.registrations)

    started = time.monotonic()
    cluster.conn.set_model_version(MODEL, "1")
    first = cluster.query()
    TIMINGS["set_model_version back to 1 until the first query"] = time.monotonic() - started

    assert (first["output"], first["default"]) == (0, False)
    answers = [cluster.query() for _ in range(10)]
    assert [(a["output"], a["default"]) for a in answers] == [(0, False)] * 10
    assert cluster.conn.get_current_model_version(MODEL) == "1"
    assert _states(cluster.manager.containers(running=True)) == before
    assert len(cluster.frontend.peer.registrations) == registrations


def test_three_replicas_each_register_with_their_own_replica_id_and_answer(cluster: Cluster) -> None:
    peer = cluster.frontend.peer
    started = time.monotonic()
    cluster.conn.set_num_replicas(MODEL, 3)  # the current version, 1
    assert wait_until(lambda: len(cluster.live("1")) == 3, 60)
    TIMINGS["set_num_replicas(3) until all three are registered"] = time.monotonic() - started

    live = cluster.live("1")
    assert sorted(r.replica_id for r in live) == [0, 1, 2]
    assert cluster.conn.get_num_replicas(MODEL, "1") == 3
    replicas = [c for c in cluster.conn.get_all_model_replicas(verbose=True) if c["model_version"] == "1"]
    assert sorted(c["model_replica_id"] for c in replicas) == [0, 1, 2]
    assert len({c["zmq_connection_id"] for c in replicas}) == 3

    # through the application: the queries are spread over every replica, all answered
    responses = {r.routing_id: len(peer.events("response", r.routing_id)) for r in live}
    answers = [cluster.query() for _ in range(9)]
    assert [(a["output"], a["default"]) for a in answers] == [(0, False)] * 9
    for registration in live:
        assert len(peer.events("response", registration.routing_id)) > responses[registration.routing_id]
    peer.assert_no_violations()


def test_a_killed_replica_loses_no_query_once_the_frontend_drops_it(cluster: Cluster) -> None:
    peer = cluster.frontend.peer
    victim = cluster.manager.containers(MODEL, "1", running=True)[-1]
    killed = time.monotonic()
    victim.kill()
    # queries keep coming; those sent to the dead replica before the drop get the default
    during = []
    while not any(e.at > killed for e in peer.events("dropped")):
        during.append(cluster.query())
        assert time.monotonic() - killed < SILENCE + 20, "the dead replica was never dropped"
    dropped = next(e.at for e in peer.events("dropped") if e.at > killed)
    TIMINGS[f"a killed replica until the frontend drops it (limit {SILENCE:.0f} s)"] = dropped - killed

    answers = [cluster.query() for _ in range(20)]
    assert [(a["output"], a["default"]) for a in answers] == [(0, False)] * 20
    assert len(cluster.live("1")) == 2
    assert cluster.conn.get_num_replicas(MODEL, "1") == 2


def test_containers_re_register_after_a_frontend_restart_during_a_stream(cluster: Cluster) -> None:
    outcomes: list[tuple[float, str]] = []  # (when, "answer" | "default" | "error" | "wrong ...")
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            try:
                answer = cluster.query(timeout=5)
            except (requests.RequestException, ValueError):
                outcomes.append((time.monotonic(), "error"))
                time.sleep(0.05)
                continue
            if answer["default"]:
                kind = "default"
            else:
                kind = "answer" if answer["output"] == 0 else f"wrong answer {answer['output']}"
            outcomes.append((time.monotonic(), kind))

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(outcomes) >= 20, 30)
        back = cluster.frontend.restart(down_for=1.5)
        assert wait_until(lambda: any(t > back and k == "answer" for t, k in outcomes), 15)
        again = next(t for t, k in outcomes if t > back and k == "answer")
        # both surviving replicas re-register by themselves
        assert wait_until(lambda: len(cluster.live("1")) == 2, 15)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(10)
    TIMINGS["frontend back until the stream is answered again"] = again - back

    assert again - back < 5.0
    after = [k for t, k in outcomes if t > again]
    assert after and set(after) == {"answer"}, after
    # what Clipper keeps in Redis survived the restart
    assert cluster.conn.get_linked_models(APP) == [MODEL]
    assert cluster.conn.get_current_model_version(MODEL) == "1"


def test_stop_inactive_model_versions_retires_version_2(cluster: Cluster) -> None:
    (v2,) = cluster.manager.containers(MODEL, "2", running=True)
    started = time.monotonic()
    cluster.conn.stop_inactive_model_versions([MODEL])
    TIMINGS["stop_inactive_model_versions until version 2 is gone"] = time.monotonic() - started

    assert cluster.conn.get_all_models() == [f"{MODEL}:1"]
    assert cluster.manager.containers(MODEL, "2") == []
    assert cluster.live("2") == [] or wait_until(lambda: cluster.live("2") == [], SILENCE + 5)
    assert len(cluster.manager.containers(MODEL, "1", running=True)) == 2
    answers = [cluster.query() for _ in range(5)]
    assert [(a["output"], a["default"]) for a in answers] == [(0, False)] * 5
