"""The HTTP image on a real Docker engine: installed exactly from the lock, on the port it is told.

Uses the session's iris image (conftest ``iris_http_image``); containers publish only on
127.0.0.1 and are removed, images through ``built_images``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import yaml

from bentolite.image_build import containerize
from bentolite.lock import read_pins

pytestmark = pytest.mark.docker

#: seconds from `docker run` to the first /readyz 200 of the iris image, with bytecode (about 4 s
#: on a quiet 2-core machine, 18 s for two starting at once on a busy one; the bound allows for that)
MAX_SECONDS_TO_READY = 45


def freeze(docker_client: Any, image: str) -> str:
    return docker_client.containers.run(image, ["python", "-m", "pip", "freeze"], remove=True).decode()


def test_a_rebuild_without_cache_installs_exactly_the_lock(
    docker_client, built_images, iris_http_image, iris_example_bundle, session_tag
) -> None:
    rebuilt = containerize(
        iris_example_bundle,
        tag=f"bentolite-test/iris-http:{session_tag}-nocache",
        no_cache=True,
        docker_client=docker_client,
    )
    built_images.append(rebuilt)
    first, second = freeze(docker_client, iris_http_image), freeze(docker_client, rebuilt)
    assert first == second
    lock_text = (iris_example_bundle / "env" / "requirements.txt").read_text()
    assert read_pins(first) == read_pins(lock_text)
    (own,) = [line for line in first.splitlines() if line.startswith("bentolite")]
    assert own.startswith("bentolite @ file:///opt/bentolite/bentolite-")  # the bundle's own wheel
    env = yaml.safe_load((iris_example_bundle / "bentolite.yaml").read_text())["env"]
    assert env["locked"] is True and env["lock_hashes"] is True  # pip checked every download
    assert "--hash=sha256:" in lock_text


def _published_port(container: Any, port: int) -> int | None:
    container.reload()
    assert container.status != "exited", container.logs().decode(errors="replace")[-3000:]
    published = (container.ports or {}).get(f"{port}/tcp")
    return int(published[0]["HostPort"]) if published else None


def _health(container: Any) -> str | None:
    container.reload()
    return (container.attrs["State"].get("Health") or {}).get("Status")


def _wait(condition: Any, timeout: float, what: str, container: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s\n{container.logs().decode(errors='replace')[-3000:]}")


#: (environment, arguments, the port served): as Cloud Run and Heroku start it, and --port winning
RUNS = [
    ({"PORT": "8080"}, [], 8080),
    ({"PORT": "9999", "BENTOLITE_PORT": "9998"}, ["--port", "8081"], 8081),
]


def test_serves_and_is_healthy_on_the_port_it_is_given(docker_client, iris_http_image) -> None:
    started = time.monotonic()
    containers = [
        docker_client.containers.run(
            iris_http_image,
            command,
            environment=environment,
            detach=True,
            ports={f"{port}/tcp": ("127.0.0.1", None)},
        )
        for environment, command, port in RUNS
    ]  # both at once: the two starts share the wait
    try:
        for container, (environment, command, port) in zip(containers, RUNS):

            def ready(container: Any = container, port: int = port) -> bool:
                host_port = _published_port(container, port)
                if host_port is None:
                    return False
                try:
                    return requests.get(f"http://127.0.0.1:{host_port}/readyz", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False

            _wait(ready, 90, f"/readyz did not answer 200 on port {port}", container)
            to_ready = time.monotonic() - started
            print(f"\niris HTTP image, {' '.join(command) or environment}: ready in {to_ready:.1f} s")
            assert to_ready < MAX_SECONDS_TO_READY
        for container, (_, _, port) in zip(containers, RUNS):
            _wait(lambda c=container: _health(c) == "healthy", 40, "the HEALTHCHECK did not pass", container)
            assert container.exec_run("cat /run/bentolite/port").output.decode().strip() == str(port)
            url = f"http://127.0.0.1:{_published_port(container, port)}/predict"
            answer = requests.post(url, json=[[5.1, 3.5, 1.4, 0.2]], timeout=10)
            assert answer.status_code == 200 and answer.json() == [0]
    finally:
        for container in containers:
            container.remove(force=True)


def test_the_image_carries_bytecode_for_what_the_server_imports(docker_client, iris_http_image) -> None:
    code = (
        "import importlib.util, os, sys; "
        "names = ['sklearn', 'numpy', 'pandas', 'scipy', 'starlette', 'uvicorn', 'bentolite']; "
        "missing = [n for n in names if not os.path.exists(importlib.util.find_spec(n).cached)]; "
        "print(missing)"
    )
    out = docker_client.containers.run(iris_http_image, ["python", "-c", code], remove=True).decode()
    assert out.strip() == "[]"
    src = docker_client.containers.run(
        iris_http_image, ["sh", "-c", "ls /bundle/src/__pycache__"], remove=True
    ).decode()
    assert "iris_classifier." in src
