"""deploy_to_clipper's checks, names and calls, with a recording connection and no engine
(test_deploy_clipper.py runs it for real)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import bentolite
import bentolite.clipper
from bentolite.build_progress import BuildLog
from bentolite.clipper import deploy
from bentolite.exceptions import DeployError, InvalidArgument, ModelVersionExists
from bentolite.image_build import BuildEvent


class RecordingConnection:
    """The ClipperConnection methods deploy_to_clipper uses, recording each call."""

    def __init__(
        self,
        connected: bool = True,
        apps: tuple[str, ...] = (),
        linked: tuple[str, ...] = (),
        models: tuple[str, ...] = (),
        app_input_type: str = "floats",
    ) -> None:
        self.connected = connected
        self.apps = list(apps)
        self.linked = list(linked)
        self.models = list(models)
        self.app_input_type = app_input_type
        self.calls: list[tuple[str, Any]] = []

    def get_all_models(self) -> list[str]:
        return list(self.models)

    def get_app_info(self, name: str) -> dict[str, Any] | None:
        if name not in self.apps:
            return None
        return {"name": name, "input_type": self.app_input_type, "linked_models": list(self.linked)}

    def deploy_model(self, **kwargs: Any) -> None:
        self.calls.append(("deploy_model", kwargs))

    def get_all_apps(self) -> list[str]:
        return list(self.apps)

    def register_application(self, **kwargs: Any) -> None:
        self.calls.append(("register_application", kwargs))

    def get_linked_models(self, app_name: str) -> list[str]:
        return list(self.linked)

    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        self.calls.append(("link_model_to_app", (app_name, model_name)))


@pytest.fixture
def builds(monkeypatch) -> list[dict[str, Any]]:
    """Replaces the image build; records its arguments."""
    recorded: list[dict[str, Any]] = []

    def fake_containerize(bundle: Any, target: str, tag: str, **kwargs: Any) -> str:
        recorded.append({"bundle": bundle, "target": target, "tag": tag, **kwargs})
        return tag

    monkeypatch.setattr(deploy, "containerize", fake_containerize)
    return recorded


@pytest.fixture
def iris_bundle(tmp_path: Path, iris_model) -> Path:
    from sample_services import IrisClassifier

    svc = IrisClassifier().pack("model", iris_model[0])
    return Path(svc.save_to_dir(tmp_path / "bundle", version="20240102_AB12"))


def test_exported_from_both_places() -> None:
    assert bentolite.deploy_to_clipper is deploy.deploy_to_clipper
    assert bentolite.clipper.deploy_to_clipper is deploy.deploy_to_clipper


def test_defaults(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    conn = RecordingConnection()
    assert deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper") == (
        "irisclassifier-predict-clipper",
        "20240102-ab12",
    )
    (build,) = builds
    assert build["target"] == "clipper" and build["api"] == "predict_clipper"
    assert build["tag"] == "clipper-irisclassifier-predict-clipper:20240102-ab12"
    assert build["push"] is False and build["build_args"] is None
    assert conn.calls == [
        (
            "deploy_model",
            {
                "name": "irisclassifier-predict-clipper",
                "version": "20240102-ab12",
                "input_type": "floats",
                "image": "clipper-irisclassifier-predict-clipper:20240102-ab12",
                "labels": None,
                "num_replicas": 1,
                "batch_size": -1,
            },
        )
    ]


def test_everything_given(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    conn = RecordingConnection()
    result = deploy.deploy_to_clipper(
        conn,
        iris_bundle,
        "predict_clipper",
        model_name="Iris_Model",
        model_version=3,
        labels=["team-a"],
        build_envs={"PIP_INDEX_URL": "https://mirror/simple"},
        registry="127.0.0.1:5000",
        num_replicas=2,
        batch_size=8,
        base_image="python:3.11",
        app_name="iris",
        slo_micros=2000,
        default_output="-1",
    )
    assert result == ("iris-model", "3")
    (build,) = builds
    assert build["tag"] == "127.0.0.1:5000/clipper-irisclassifier-predict-clipper:20240102-ab12"
    assert build["push"] is True and build["base_image"] == "python:3.11"
    assert build["build_args"] == {"PIP_INDEX_URL": "https://mirror/simple"}
    assert conn.calls == [
        (
            "deploy_model",
            {
                "name": "iris-model",
                "version": "3",
                "input_type": "floats",
                "image": build["tag"],
                "labels": ["team-a"],
                "num_replicas": 2,
                "batch_size": 8,
            },
        ),
        (
            "register_application",
            {"name": "iris", "input_type": "floats", "default_output": "-1", "slo_micros": 2000},
        ),
        ("link_model_to_app", ("iris", "iris-model")),
    ]


def test_existing_app_and_link_are_kept(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    conn = RecordingConnection(apps=("iris",), linked=("irisclassifier-predict-clipper",))
    deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", app_name="iris")
    assert [name for name, _ in conn.calls] == ["deploy_model"]


def test_what_clipper_would_refuse_is_refused_before_building(
    iris_bundle: Path, builds: list[dict[str, Any]]
) -> None:
    conn = RecordingConnection(apps=("iris",), linked=("other",))
    with pytest.raises(DeployError, match="application iris already serves other"):
        deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", app_name="iris")
    conn = RecordingConnection(apps=("iris",), app_input_type="doubles")
    with pytest.raises(DeployError, match="application iris takes doubles inputs and the API takes floats"):
        deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", app_name="iris")
    # Clipper's management frontend spells ints "integers"; the same type is accepted
    conn = RecordingConnection(apps=("iris",), app_input_type="FLOATS")
    deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", app_name="iris")
    assert len(builds) == 1
    builds.clear()

    conn = RecordingConnection(models=("m:1", "m:7", "m:v2", "other:3"))
    with pytest.raises(ModelVersionExists) as caught:
        deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", model_name="m", model_version="7")
    assert str(caught.value) == (
        "Clipper already has model m at version 7 (its versions: 1, 7, v2); "
        "deploy under a new version, e.g. 8"
    )
    assert (caught.value.name, caught.value.version, caught.value.suggestion) == ("m", "7", "8")
    assert caught.value.exit_code == 1
    with pytest.raises(ModelVersionExists, match="e.g. v2-2-2"):
        deploy.deploy_to_clipper(
            RecordingConnection(models=("m:v2", "m:v2-2")), iris_bundle, "predict_clipper", "m", "v2"
        )
    with pytest.raises(InvalidArgument, match="registry 'Bad Host:5000' gives an image name Docker refuses"):
        deploy.deploy_to_clipper(
            RecordingConnection(), iris_bundle, "predict_clipper", registry="Bad Host:5000"
        )
    with pytest.raises(InvalidArgument, match="has no API 'nope'"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "nope")
    assert builds == [] and conn.calls == []


def test_progress_events(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    events: list[Any] = []
    conn = RecordingConnection()
    deploy.deploy_to_clipper(
        conn, iris_bundle, "predict_clipper", num_replicas=3, app_name="iris", on_event=events.append
    )
    assert builds[0]["on_event"] == events.append
    assert [(e.kind, e.text) for e in events] == [
        (
            "info",
            "deploying irisclassifier-predict-clipper:20240102-ab12 (3 replicas of "
            "clipper-irisclassifier-predict-clipper:20240102-ab12)",
        ),
        ("info", "deployed irisclassifier-predict-clipper:20240102-ab12"),
        ("info", "registered application iris (floats)"),
        ("info", "linked irisclassifier-predict-clipper to application iris"),
    ]


def test_without_a_handler_progress_is_logged_when_stderr_is_no_terminal(
    iris_bundle: Path, builds: list[dict[str, Any]], caplog
) -> None:
    with caplog.at_level(logging.INFO, logger="bentolite.build"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "predict_clipper")
        handler = builds[0]["on_event"]
        assert isinstance(handler, BuildLog)
        handler(BuildEvent("step", "Step 1/9 :  FROM   python:3.11-slim"))
        handler(BuildEvent("output", "Collecting numpy"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.INFO,
            "deploying irisclassifier-predict-clipper:20240102-ab12 (1 replica of "
            "clipper-irisclassifier-predict-clipper:20240102-ab12)",
        ),
        (logging.INFO, "deployed irisclassifier-predict-clipper:20240102-ab12"),
        (logging.INFO, "Step 1/9 : FROM python:3.11-slim"),
    ]


def test_deploy_bentoml_takes_bentomls_argument_order(
    iris_bundle: Path, builds: list[dict[str, Any]]
) -> None:
    from bentolite.clipper import deploy_bentoml

    conn = RecordingConnection()
    result = deploy_bentoml(conn, str(iris_bundle), "predict_clipper", "iris", ["team-a"], {"K": "v"})
    assert result == ("iris", "20240102-ab12")
    assert builds[0]["build_args"] == {"K": "v"}
    assert conn.calls[0][1]["labels"] == ["team-a"] and conn.calls[0][1]["name"] == "iris"


def test_refusals_before_building(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    with pytest.raises(DeployError, match="not connected; call clipper_conn.connect()"):
        deploy.deploy_to_clipper(RecordingConnection(connected=False), iris_bundle, "predict_clipper")
    with pytest.raises(InvalidArgument, match="must be a clipper_admin.ClipperConnection"):
        deploy.deploy_to_clipper(object(), iris_bundle, "predict_clipper")
    with pytest.raises(InvalidArgument, match="which Clipper cannot call"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "predict")
    with pytest.raises(InvalidArgument, match="cannot be made a valid Clipper and Docker name"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "predict_clipper", model_name="__")
    with pytest.raises(InvalidArgument, match="e.g. 'iris-app'"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "predict_clipper", app_name="Iris App")
    with pytest.raises(InvalidArgument, match="batch_size"):
        deploy.deploy_to_clipper(RecordingConnection(), iris_bundle, "predict_clipper", batch_size=0)
    assert builds == []


def test_connection_failures_say_what_failed(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    class Refusing(RecordingConnection):
        def deploy_model(self, **kwargs: Any) -> None:
            raise RuntimeError("Received error status code: 400 and message: model exists")

    with pytest.raises(
        DeployError, match="deploying irisclassifier-predict-clipper:20240102-ab12 .* model exists"
    ):
        deploy.deploy_to_clipper(Refusing(), iris_bundle, "predict_clipper")
