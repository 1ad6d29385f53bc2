"""HTTP and Clipper images built and run on a real Docker engine.

Containers are reached only through ports published on 127.0.0.1 or through host networking.
Every container and image made here is removed (images by the ``built_images`` fixture).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_runner import CliRunner
from clipper_peer import ClipperPeer
from live_server import free_port

from bentolite.bundle_meta import BundleMeta
from bentolite.cli.main import cli
from bentolite.clipper.protocol import InputType
from bentolite.dockerfile import read_requirements
from bentolite.image_build import BuildEvent, containerize

pytestmark = pytest.mark.docker

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]]
IRIS_SPECIES = [0, 1, 2]
#: the iris HTTP image on the engine's local python:3.11-slim (234 MB of it is the base): 521 MB,
#: 52 MB of it bytecode
MAX_IRIS_IMAGE_MB = 540


def wait_for(condition: Any, timeout: float, what: str, container: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    logs = container.logs().decode(errors="replace")[-3000:] if container is not None else ""
    raise AssertionError(f"{what} within {timeout} s\n{logs}")


@contextlib.contextmanager
def http_container(docker_client: Any, image: str) -> Iterator[tuple[Any, str]]:
    """Run ``image`` with port 3000 published on 127.0.0.1; yields it and its base URL once ready."""
    container = docker_client.containers.run(image, detach=True, ports={"3000/tcp": ("127.0.0.1", None)})
    try:

        def ready() -> bool:
            container.reload()
            assert container.status != "exited", container.logs().decode(errors="replace")
            ports = container.ports.get("3000/tcp")
            if not ports:
                return False
            try:
                return requests.get(f"http://127.0.0.1:{ports[0]['HostPort']}/readyz", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, 90, "the HTTP server was not ready", container)
        yield container, f"http://127.0.0.1:{container.ports['3000/tcp'][0]['HostPort']}"
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def clipper_container(docker_client: Any, image: str, peer: ClipperPeer, **env: str) -> Iterator[Any]:
    """Run a Clipper image on the host network, pointed at ``peer``."""
    environment = {
        "CLIPPER_MODEL_NAME": "iris",
        "CLIPPER_MODEL_VERSION": "1",
        "CLIPPER_IP": "127.0.0.1",
        "CLIPPER_PORT": str(peer.port),
        "BENTOLITE_METRICS_PORT": "",
        **env,
    }
    container = docker_client.containers.run(image, detach=True, network_mode="host", environment=environment)
    try:
        yield container
    finally:
        container.remove(force=True)


def health(container: Any) -> str | None:
    container.reload()
    return (container.attrs["State"].get("Health") or {}).get("Status")


# --- 1. the HTTP image ---------------------------------------------------------------------------


def test_http_image_serves_the_iris_example(docker_client, iris_http_image, iris_example_bundle) -> None:
    meta = BundleMeta.read(iris_example_bundle)
    with http_container(docker_client, iris_http_image) as (container, url):
        answer = requests.post(f"{url}/predict", json=IRIS_ROWS, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == IRIS_SPECIES
        assert container.exec_run("id -u").output.decode().strip() == "10001"
        wait_for(lambda: health(container) == "healthy", 30, "the HEALTHCHECK did not pass", container)

    image = docker_client.images.get(iris_http_image)
    labels = image.labels
    assert labels["ai.bentolite.bundle"] == meta.tag
    assert labels["ai.bentolite.target"] == "http"
    assert labels["org.opencontainers.image.version"] == meta.version
    locked = json.loads(labels["ai.bentolite.requirements"])
    assert "scikit-learn==" + _sklearn_version() in locked
    assert locked == read_requirements(iris_example_bundle, meta)
    assert image.attrs["Config"]["User"] == "10001"
    size_mb = image.attrs["Size"] / 1e6
    print(f"\niris HTTP image: {size_mb:.0f} MB")
    assert size_mb <= MAX_IRIS_IMAGE_MB


def _sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


# --- 2. the Clipper image ------------------------------------------------------------------------


def test_clipper_image_answers_floats(docker_client, built_images, iris_example_bundle, session_tag) -> None:
    image = containerize(
        iris_example_bundle,
        "clipper",
        f"bentolite-test/iris-clipper:{session_tag}",
        docker_client=docker_client,
    )
    built_images.append(image)
    metrics_port = free_port()
    with (
        ClipperPeer(port=0) as peer,
        clipper_container(
            docker_client, image, peer, CLIPPER_INPUT_TYPE="floats", BENTOLITE_METRICS_PORT=str(metrics_port)
        ) as container,
    ):
        registration = peer.wait_for_registration(90)
        assert (registration.model_name, registration.model_version) == ("iris", "1")
        assert registration.input_type is InputType.FLOATS
        outputs = peer.predict([struct.pack("<4f", *row) for row in IRIS_ROWS], InputType.FLOATS, timeout=30)
        assert [json.loads(o) for o in outputs] == IRIS_SPECIES
        peer.assert_no_violations()
        # Clipper's probes: the health check and `cat /model_is_ready.check`
        wait_for(lambda: health(container) == "healthy", 30, "the HEALTHCHECK did not pass", container)
        assert container.exec_run("cat /model_is_ready.check").output.decode().strip() == "READY"
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "clipper_mc_pred_total" in metrics
    labels = docker_client.images.get(image).labels
    assert labels["ai.bentolite.api"] == "predict_clipper"
    assert labels["ai.bentolite.clipper_input_type"] == "floats"


def test_clipper_image_answers_strings(
    docker_client, built_images, iris_model, tmp_path, session_tag
) -> None:
    from iris_text import IrisText

    bundle = IrisText().pack("model", iris_model[0]).save_to_dir(tmp_path / "bundle")
    image = containerize(
        bundle, "clipper", f"bentolite-test/iris-text:{session_tag}", docker_client=docker_client
    )
    built_images.append(image)
    with (
        ClipperPeer(port=0) as peer,
        clipper_container(docker_client, image, peer, CLIPPER_INPUT_TYPE="strings"),
    ):
        assert peer.wait_for_registration(90).input_type is InputType.STRINGS
        inputs = [",".join(map(str, row)).encode() for row in IRIS_ROWS]
        assert peer.predict(inputs, InputType.STRINGS, timeout=30) == [b"setosa", b"versicolor", b"virginica"]
        peer.assert_no_violations()


# --- 4. layer caching ----------------------------------------------------------------------------


def _layer_of(docker_client: Any, image: str, needle: str) -> str:
    """The digest of the filesystem layer the build step containing ``needle`` made."""
    (step,) = [h["Id"] for h in docker_client.api.history(image) if needle in h["CreatedBy"] + " "]
    return docker_client.api.inspect_image(step)["RootFS"]["Layers"][-1]


def test_code_edit_reuses_the_dependency_and_artifact_layers(
    docker_client, built_images, iris_example_bundle, tmp_path, session_tag
) -> None:
    # The image before the edit is built here, right before the edited one (from the engine's
    # cache): on an engine shared with other builds of the same layers (a --no-cache rebuild
    # makes siblings with the same instructions) both then follow the same chain of layers.
    before = containerize(
        iris_example_bundle, tag=f"bentolite-test/iris-http:{session_tag}-before", docker_client=docker_client
    )
    built_images.append(before)
    changed = tmp_path / "changed"
    shutil.copytree(iris_example_bundle, changed)
    source = changed / "src" / "iris_classifier.py"
    source.write_text(source.read_text().replace('"""One species per row', '"""The species of each row'))
    events: list[BuildEvent] = []
    started = time.monotonic()
    image = containerize(
        changed,
        tag=f"bentolite-test/iris-http:{session_tag}-changed",
        on_event=events.append,
        docker_client=docker_client,
    )
    built_images.append(image)
    elapsed = time.monotonic() - started

    steps = [i for i, e in enumerate(events) if e.kind == "step"]

    def cached(needle: str) -> bool:
        (step,) = [i for i in steps if needle in events[i].text]
        return events[step + 1].text.strip() == "---> Using cache"

    assert cached("-r /opt/bentolite/requirements.txt") and cached("artifacts /bundle/artifacts")
    assert not cached("src /bundle/src")
    # same layer digests: a push of the edited image sends neither the packages nor the model
    for needle in ("-r /opt/bentolite/requirements.txt", " in /bundle/artifacts "):
        assert _layer_of(docker_client, image, needle) == _layer_of(docker_client, before, needle)
    assert _layer_of(docker_client, image, " in /bundle/src ") != _layer_of(
        docker_client, before, " in /bundle/src "
    )
    assert docker_client.images.get(image).id != docker_client.images.get(before).id
    assert elapsed < 60


# --- 5. pushing ----------------------------------------------------------------------------------


def registry_tags(registry: str, repository: str) -> list[str]:
    answer = requests.get(f"http://{registry}/v2/{repository}/tags/list", timeout=5)
    return answer.json().get("tags") or [] if answer.ok else []


def test_cli_push_then_pull_back_and_run(
    docker_client, built_images, iris_http_image, iris_example_bundle, registry, session_tag
) -> None:
    image = f"{registry}/bentolite-test/iris-http:{session_tag}"
    built_images.append(image)
    result = CliRunner().invoke(cli, ["containerize", str(iris_example_bundle), "-t", image, "--push"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == image
    assert "pushed " + image in result.stderr
    assert session_tag in registry_tags(registry, "bentolite-test/iris-http")

    docker_client.images.remove(image)
    pulled = docker_client.images.pull(f"{registry}/bentolite-test/iris-http", tag=session_tag)
    assert image in pulled.tags
    with http_container(docker_client, image) as (_, url):
        assert requests.post(f"{url}/predict", json=IRIS_ROWS[:1], timeout=10).json() == IRIS_SPECIES[:1]


def test_push_without_a_reachable_registry_fails_clearly(
    docker_client, built_images, iris_http_image, iris_example_bundle, session_tag
) -> None:
    image = f"127.0.0.1:{free_port()}/bentolite-test/iris-http:{session_tag}"
    built_images.append(image)
    result = CliRunner().invoke(cli, ["containerize", str(iris_example_bundle), "-t", image, "--push"])
    assert result.exit_code == 1
    assert f"error: pushing {image} failed" in result.stderr


def remove_untagged_layers(docker_client: Any, build_output: str) -> None:
    """Remove the layers a failed build left behind (untagged and childless), newest first."""
    import docker

    for layer in reversed(re.findall(r"---> ([0-9a-f]{12})$", build_output, flags=re.MULTILINE)):
        try:
            if not docker_client.images.get(layer).tags:
                docker_client.images.remove(layer)
        except docker.errors.APIError:
            pass  # gone already, or a cached layer other images still use


def test_failed_step_exits_1_with_its_output(docker_client, tmp_path: Path, iris_example_bundle) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(iris_example_bundle, broken)
    (broken / "env" / "requirements.txt").write_text("--no-index\nno-such-package-bentolite-test==1.0\n")
    result = CliRunner().invoke(cli, ["containerize", str(broken), "-t", "bentolite-test/broken:1"])
    remove_untagged_layers(docker_client, result.stderr)
    assert result.exit_code == 1
    assert re.search(
        r"error: building bentolite-test/broken:1 failed at step \d+/\d+ \(RUN python -m pip install .*\): "
        r"exit code 1",
        result.stderr,
    )
    assert "No matching distribution found for no-such-package-bentolite-test==1.0" in result.stderr
    assert not docker_client.images.list(name="bentolite-test/broken")
