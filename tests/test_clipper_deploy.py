"""deploy_to_clipper's checks, names and calls, with a recording connection and no engine
(test_deploy_clipper.py runs it for real)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bentolite
import bentolite.clipper
from bentolite.clipper import deploy
from bentolite.exceptions import DeployError, InvalidArgument


class RecordingConnection:
    """The ClipperConnection methods deploy_to_clipper uses, recording each call."""

    def __init__(
        self, connected: bool = True, apps: tuple[str, ...] = (), linked: tuple[str, ...] = ()
    ) -> None:
        self.connected = connected
        self.apps = list(apps)
        self.linked = list(linked)
        self.calls: list[tuple[str, Any]] = []

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


def test_app_serving_another_model(iris_bundle: Path, builds: list[dict[str, Any]]) -> None:
    conn = RecordingConnection(apps=("iris",), linked=("other",))
    with pytest.raises(DeployError, match="already serves other"):
        deploy.deploy_to_clipper(conn, iris_bundle, "predict_clipper", app_name="iris")


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
