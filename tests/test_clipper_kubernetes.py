"""A model container as Clipper's Kubernetes manager runs it, checked as far as one machine can:
the image pushed to a registry and pulled back by its registry name, started with exactly what
clipper_admin's own deployment template gives it (environment, labels, no command, the image's
user), probed the way the template probes it, its metrics on port 1390, and a frontend host name
that does not resolve for the first seconds (a Service still being created), retried and logged
once.

The container gets a network of its own, as a pod does: a private Docker network, where port
1390 is the container's own. The query frontend's RPC service is the test's peer, listening on
the network's gateway address at Clipper's port 7000; the name Clipper gives it
(``query-frontend-0-at-<cluster>``) starts resolving when the test adds it to the container's
hosts file.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from clipper_peer import ClipperPeer, wait_until

from bentolite.clipper import resolve as resolve_module
from bentolite.clipper.protocol import InputType
from bentolite.clipper.runtime import ClipperRuntime

FRONTEND_NAME = "query-frontend-0-at-bentolite-test"


def echo(frames: list[bytes]) -> list[str]:
    return [str(len(f)) for f in frames]


@pytest.mark.timeout(30)
def test_unresolvable_frontend_name_is_retried_and_logged_once(monkeypatch, caplog) -> None:
    # The machine's resolver cannot be changed from a test, so the name's resolution is
    # played here: unknown for its first lookups, then the peer's loopback address. The real
    # resolver inside a container is exercised by the docker test below.
    failures = 4
    lookups: list[str] = []
    real_lookup = socket.gethostbyname

    def lookup(name: str) -> str:
        if name != FRONTEND_NAME:
            return real_lookup(name)
        lookups.append(name)
        if len(lookups) <= failures:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return "127.0.0.1"

    monkeypatch.setattr(resolve_module.socket, "gethostbyname", lookup)
    monkeypatch.setattr(resolve_module, "RESOLVE_RETRY", 0.2)
    with ClipperPeer(port=0) as peer:
        runtime = ClipperRuntime(
            echo,
            model_name="m",
            model_version="1",
            input_type=InputType.BYTES,
            host=FRONTEND_NAME,
            port=peer.port,
            ready_file=None,
        )
        thread = threading.Thread(target=runtime.run, daemon=True)
        with caplog.at_level(logging.INFO, logger="bentolite.clipper.runtime"):
            thread.start()
            try:
                registration = peer.wait_for_registration(10)
                assert peer.predict([b"abc"], InputType.BYTES) == [b"3"]
            finally:
                runtime.stop()
                thread.join(5)
    assert (registration.model_name, registration.model_version) == ("m", "1")
    assert len(lookups) == failures + 1 and runtime.sessions == 1
    messages = [r.getMessage() for r in caplog.records]
    unresolved = [m for m in messages if "cannot resolve Clipper host" in m]
    assert unresolved == [
        f"cannot resolve Clipper host {FRONTEND_NAME!r} ([Errno -2] Name or service not known); "
        "retrying every 0.2 s"
    ]
    assert [m for m in messages if m.startswith(f"resolved Clipper host {FRONTEND_NAME!r} to 127.0.0.1")]


# --- the image as Clipper's Kubernetes manager runs it ------------------------------------------


def render_deployment(**values: Any) -> dict[str, Any]:
    """clipper_admin's model-container Deployment, rendered as its Kubernetes manager renders it."""
    import clipper_admin
    import jinja2
    import yaml

    templates = Path(clipper_admin.__file__).parent / "kubernetes"
    engine = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), undefined=jinja2.StrictUndefined)
    return yaml.safe_load(engine.get_template("model-container-template.yaml").render(**values))


@pytest.fixture
def pod_network(docker_client, session_tag: str):
    """A private Docker network, as a pod has its own; removed afterwards."""
    network = docker_client.networks.create(f"bentolite-k8s-{session_tag}", driver="bridge")
    try:
        network.reload()
        yield network
    finally:
        network.remove()


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_the_image_runs_as_the_kubernetes_template_runs_it(
    docker_client, built_images, iris_example_bundle, registry, session_tag, pod_network
) -> None:
    from clipper_admin.container_manager import create_model_container_label
    from clipper_admin.kubernetes.kubernetes_container_manager import get_model_deployment_name

    from bentolite.bundle_meta import BundleMeta
    from bentolite.image_build import containerize
    from bentolite.image_names import default_image_name

    cluster, name, version = "k8s", "iris", "1"
    meta = BundleMeta.read(iris_example_bundle)
    # the name deploy_to_clipper(registry=...) gives it, so a session pushes these layers once
    image = f"{registry}/{default_image_name(meta.name, meta.version, 'clipper', 'predict_clipper')}"
    containerize(iris_example_bundle, "clipper", image, push=True, docker_client=docker_client)
    built_images.append(image)
    # a node has only what the registry gives it (the template says imagePullPolicy: Always)
    docker_client.images.remove(image)
    repository, tag = image.rsplit(":", 1)
    pulled = docker_client.images.pull(repository, tag=tag)
    manifest = requests.get(
        f"http://{registry}/v2/{repository.split('/', 1)[1]}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert f"{repository}@{manifest.headers['Docker-Content-Digest']}" in pulled.attrs["RepoDigests"]

    deployment = render_deployment(
        deployment_name=get_model_deployment_name(name, version, 0, cluster),
        num_replicas=1,
        container_label=create_model_container_label(name, version),
        model_name=name,
        version=version,
        query_frontend_id=0,
        input_type="floats",
        image=image,
        cluster_name=cluster,
    )
    pod = deployment["spec"]["template"]
    (spec,) = pod["spec"]["containers"]
    environment = {e["name"]: e["value"] for e in spec["env"]}
    frontend_name = environment["CLIPPER_IP"]
    assert frontend_name == "query-frontend-0-at-k8s" and "CLIPPER_PORT" not in environment
    assert "command" not in spec and "args" not in spec and "securityContext" not in spec
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "1390"
    assert {"containerPort": 1390} in spec["ports"]
    # the image agrees with the template: a non-root user (numeric, as runAsNonRoot needs), the
    # metrics port, and the file the readiness probe reads
    config = pulled.attrs["Config"]
    assert re.fullmatch(r"[1-9][0-9]*", config["User"]), config["User"]
    assert "1390/tcp" in config["ExposedPorts"]
    probe = spec["readinessProbe"]["exec"]["command"]
    assert probe == ["cat", "/model_is_ready.check"]

    gateway = pod_network.attrs["IPAM"]["Config"][0]["Gateway"]
    with ClipperPeer(port=7000, host=gateway) as peer:
        container = docker_client.containers.run(
            spec["image"],
            detach=True,
            name=f"{spec['name'][:40]}-{session_tag}",
            environment=environment,
            labels=pod["metadata"]["labels"],
            network=pod_network.name,
        )
        try:
            assert wait_until(lambda: container.exec_run(probe).exit_code == 0, 90, interval=0.5), (
                container.logs().decode()
            )
            assert container.exec_run(probe).output.strip() == b"READY"
            # the frontend's name does not resolve yet; the runtime keeps trying, a few seconds
            time.sleep(3)
            assert peer.registrations == []
            container.exec_run(["sh", "-c", f"echo '{gateway} {frontend_name}' >> /etc/hosts"], user="root")
            resolvable = time.monotonic()
            registration = peer.wait_for_registration(30)
            # retried every 0.5 s, it registers soon after the name resolves
            assert time.monotonic() - resolvable < 5
            assert (registration.model_name, registration.model_version) == (name, version)
            outputs = peer.predict(
                [struct.pack("<4f", 6.7, 3.0, 5.2, 2.3)], registration.input_type, timeout=30
            )
            assert outputs == [b"2"]

            assert container.exec_run(["id", "-u"]).output.strip() == config["User"].encode()
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][pod_network.name]["IPAddress"]
            metrics = requests.get(f"http://{address}:1390/metrics", timeout=10).text
            assert re.search(r"^clipper_mc_pred_total 1\.0$", metrics, re.M), metrics
            logs = container.logs().decode()
            assert logs.count("cannot resolve Clipper host") == 1, logs
            assert f"resolved Clipper host '{frontend_name}' to {gateway}" in logs
        finally:
            container.remove(force=True)
