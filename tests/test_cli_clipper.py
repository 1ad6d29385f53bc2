"""``bentolite deploy-clipper``: the checks made before anything is built or connected, the
managers' failures as one line, and a deploy through the real ``clipper_admin.ClipperConnection``
to the one-machine cluster of tests/clipper_cluster.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cli_runner import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bentolite import image_names
from bentolite.cli.main import cli

SETOSA = [5.1, 3.5, 1.4, 0.2]


def deploy(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["deploy-clipper", *args], env=env)


def deploy_in_a_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command in a process of its own: the kubernetes client reads KUBECONFIG on import."""
    command = [sys.executable, "-c", "from bentolite.cli import main; main()", "deploy-clipper", *args]
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def iris_dir(iris_example_bundle) -> str:
    return str(iris_example_bundle)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["predict"], "takes DataframeInput, which Clipper cannot call"),
        (["nope"], "has no API 'nope'; its Clipper APIs: predict_clipper"),
        (
            ["predict_clipper", "--model-name", "Iris_Model"],
            "--model-name 'Iris_Model' is not a Clipper name",
        ),
        (["predict_clipper", "--version", "1.0"], "e.g. '1-0'"),
        (["predict_clipper", "--app", "Iris App"], "e.g. 'iris-app'"),
        (["predict_clipper", "--label", "a:b"], "--label 'a:b'"),
        (["predict_clipper", "--registry", "Bad Host:5000"], "gives an image name Docker refuses"),
        (["predict_clipper", "--build-arg", "NOEQUALS"], "--build-arg 'NOEQUALS': expected KEY=VALUE"),
        (["predict_clipper", "--kubernetes-proxy", "127.0.0.1:8001"], "need --manager kubernetes"),
        (["predict_clipper", "--manager", "nothing"], "expected docker, kubernetes or MODULE:ATTR"),
        (["predict_clipper", "--manager", "no_such_module:X"], "cannot import no_such_module"),
    ],
)
def test_bad_names_exit_2_before_anything_is_built(iris_dir: str, args: list[str], expected: str) -> None:
    # DOCKER_HOST points nowhere: a check that reached the engine would fail differently
    result = deploy(iris_dir, *args, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.exit_code == 2, result.stderr
    assert expected in one_line_error(result)
    assert result.stdout == ""


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcXYZ019-_.:/ é", min_size=1, max_size=12))
def test_model_names_are_taken_only_when_clipper_takes_them(iris_dir: str, name: str) -> None:
    result = deploy(iris_dir, "predict_clipper", "--model-name", name, "--manager", "nothing")
    # a valid name gets as far as the manager, which is the next thing checked
    if image_names.is_clipper_name(name):
        assert "--manager 'nothing'" in one_line_error(result)
    else:
        assert f"--model-name {name!r} is not a Clipper name" in one_line_error(result)
    assert result.exit_code == 2


def test_kubernetes_without_a_kube_config_fails_in_one_line(iris_dir: str, tmp_path: Path) -> None:
    pytest.importorskip("clipper_admin")
    env = {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    result = deploy_in_a_process(
        iris_dir, "predict_clipper", "--manager", "kubernetes", "--use-internal-ip", env=env
    )
    assert result.returncode == 1
    assert one_line_error(result) == (
        "error: cannot set up the kubernetes container manager: ConfigException: "
        "Invalid kube-config file. No configuration found."
    )


KUBE_CONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_kubernetes_with_a_client_newer_than_clipper_admin_fails_in_one_line(
    iris_dir: str, tmp_path: Path
) -> None:
    kubernetes_client = pytest.importorskip("kubernetes.client")
    if hasattr(kubernetes_client, "ExtensionsV1beta1Api"):
        pytest.skip("this kubernetes client still has the API clipper_admin 0.4.1 calls")
    pytest.importorskip("clipper_admin")
    (tmp_path / "config").write_text(KUBE_CONFIG)
    env = {"KUBECONFIG": str(tmp_path / "config"), "HOME": str(tmp_path)}
    result = deploy_in_a_process(iris_dir, "predict_clipper", "--manager", "kubernetes", env=env)
    assert result.returncode == 1
    assert one_line_error(result) == (
        "error: cannot set up the kubernetes container manager: AttributeError: "
        "module 'kubernetes.client' has no attribute 'ExtensionsV1beta1Api'"
    )


@pytest.mark.docker
def test_no_cluster_of_that_name_on_the_engine(iris_dir: str, docker_client, session_tag: str) -> None:
    pytest.importorskip("clipper_admin")
    result = deploy(iris_dir, "predict_clipper", "--cluster-name", f"absent-{session_tag}")
    assert result.exit_code == 1
    assert f"no Clipper cluster named 'absent-{session_tag}' runs on this Docker engine" in (
        one_line_error(result)
    )


@pytest.mark.docker
def test_deploy_prints_the_model_and_refuses_what_clipper_would(
    clipper, built_images, iris_dir: str, iris_example_bundle
) -> None:
    from bentolite.bundle_meta import BundleMeta
    from bentolite.image_names import default_image_name

    conn, manager = clipper
    meta = BundleMeta.read(iris_example_bundle)
    image = default_image_name(meta.name, meta.version, "clipper", "predict_clipper")
    built_images.append(image)
    target = [
        "--manager",
        "clipper_cluster:LocalContainerManager",
        "--cluster-name",
        manager.cluster_identifier,
    ]

    result = deploy(
        iris_dir,
        "predict_clipper",
        *target,
        "--model-name", "iris",
        "--version", "1",
        "--app", "iris",
        "--slo-micros", "20000",
        "--default-output", "-1",
        "--label", "team-a",
        "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "model_name": "iris",
        "model_version": "1",
        "image": image,
        "input_type": "floats",
        "replicas": 1,
        "app": "iris",
        "cluster": manager.cluster_identifier,
    }
    assert "deployed iris:1" in result.stderr and "linked iris to application iris" in result.stderr
    assert conn.get_model_info("iris", "1")["labels"] == ["team-a"]
    assert conn.get_app_info("iris")["latency_slo_micros"] == 20000
    manager.frontend.peer.wait_for_registration(60)
    query = f"http://{conn.get_query_addr()}/iris/predict"
    assert requests.post(query, json={"input": SETOSA}, timeout=30).json()["output"] == 0

    # what Clipper would refuse is refused before building (a build would show its steps)
    again = deploy(iris_dir, "predict_clipper", *target, "--model-name", "iris", "--version", "1")
    assert again.exit_code == 1
    assert one_line_error(again) == (
        "error: Clipper already has model iris at version 1 (its versions: 1); deploy under a new "
        "version, e.g. 2: pass --version 2"
    )
    conn.register_application("words", "strings", "", 100000)
    other_type = deploy(iris_dir, "predict_clipper", *target, "--version", "2", "--app", "words")
    assert other_type.exit_code == 1
    assert "application words takes strings inputs and the API takes floats" in one_line_error(other_type)
    assert conn.get_all_models() == ["iris:1"] and len(manager.containers()) == 1
