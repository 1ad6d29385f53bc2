"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))


@pytest.fixture(autouse=True)
def store_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty store (BENTOLITE_HOME), never the user's."""
    home = tmp_path_factory.mktemp("bentolite_home")
    monkeypatch.setenv("BENTOLITE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def iris_model():
    """A small SVM trained on the iris data set, and the data."""
    from sklearn import datasets, svm

    iris = datasets.load_iris()
    clf = svm.SVC(gamma="scale").fit(iris.data, iris.target)
    return clf, iris.data


# --- Docker engine ------------------------------------------------------------------------------
# Tests marked `docker` need a reachable engine (DOCKER_HOST). Without one they are skipped, with
# the reason in the report header, except under CI=true, where a missing engine fails them.


def _docker_engine() -> tuple[object | None, str]:
    import os

    try:
        import docker
        import requests
    except ImportError as exc:
        return None, f"the docker SDK is not installed ({exc})"
    client = None
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        if client is not None:
            client.close()
        host = os.environ.get("DOCKER_HOST") or "unset (default socket)"
        return None, f"no Docker engine reachable at DOCKER_HOST={host}: {type(exc).__name__}: {exc}"
    return client, f"Docker engine {client.version().get('Version')} at {client.api.base_url}"


def pytest_report_header(config: pytest.Config) -> str:
    client, status = _docker_engine()
    if client is not None:
        client.close()
    return f"docker: {status}"


@pytest.fixture(scope="session")
def docker_client():
    """A ``docker.DockerClient``; skips (fails under CI=true) when no engine is reachable."""
    import os

    client, status = _docker_engine()
    if client is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {status}")
        pytest.skip(status)
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_tag() -> str:
    """A tag unique to this test session, for the images it builds."""
    import secrets

    return f"t{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def built_images(docker_client):
    """Names of the images a test builds; every one is removed when the session ends."""
    import docker

    names: list[str] = []
    yield names
    for name in reversed(names):
        try:
            docker_client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass  # another name of the same image already took it


@pytest.fixture(scope="session")
def iris_example_bundle(tmp_path_factory: pytest.TempPathFactory, iris_model) -> Path:
    """examples/iris_classifier saved as a bundle directory, with the iris SVM packed."""
    example = str(EXAMPLES / "iris_classifier")
    sys.path.insert(0, example)
    try:
        from iris_classifier import IrisClassifier

        svc = IrisClassifier().pack("model", iris_model[0])
        return Path(svc.save_to_dir(tmp_path_factory.mktemp("iris") / "bundle"))
    finally:
        # other tests import their own `iris_classifier` (the README's, for one)
        sys.path.remove(example)
        sys.modules.pop("iris_classifier", None)


@pytest.fixture(scope="session")
def iris_http_image(docker_client, built_images, iris_example_bundle, session_tag) -> str:
    """The HTTP image of the iris example, built once per session."""
    from bentolite.image_build import containerize

    image = containerize(
        iris_example_bundle, tag=f"bentolite-test/iris-http:{session_tag}", docker_client=docker_client
    )
    built_images.append(image)
    return image


@pytest.fixture(scope="session")
def registry() -> str:
    """``host:port`` of the test registry (BENTOLITE_TEST_REGISTRY, set by shared/ci/registry.sh)."""
    import os

    import requests

    address = os.environ.get("BENTOLITE_TEST_REGISTRY")
    reason = 'BENTOLITE_TEST_REGISTRY is not set; start one with: eval "$(ci/registry.sh 5000)"'
    if address:
        try:
            requests.get(f"http://{address}/v2/", timeout=5).raise_for_status()
            return address
        except requests.RequestException as exc:
            reason = f"the registry at BENTOLITE_TEST_REGISTRY={address} does not answer: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture
def clipper(docker_client, session_tag):
    """A connected ``clipper_admin.ClipperConnection`` on the one-machine Clipper cluster of
    tests/clipper_cluster.py, and its container manager; everything is stopped afterwards."""
    clipper_admin = pytest.importorskip("clipper_admin")
    from clipper_cluster import LocalContainerManager

    manager = LocalContainerManager(docker_client, cluster_name=f"bentolite-test-{session_tag}")
    conn = clipper_admin.ClipperConnection(manager)
    conn.start_clipper()
    try:
        yield conn, manager
    finally:
        conn.stop_all()
        assert not manager.containers()
