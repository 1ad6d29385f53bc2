"""deploy_to_clipper through the real clipper_admin.ClipperConnection, with model containers on a
real Docker engine and Clipper's frontends played by tests/clipper_cluster.py (the ``clipper``
fixture of conftest.py)."""

from __future__ import annotations

import struct

import pytest
import requests

from bentolite import deploy_to_clipper
from bentolite.bundle_meta import BundleMeta
from bentolite.clipper.protocol import InputType
from bentolite.image_names import default_image_name, to_clipper_name

pytestmark = pytest.mark.docker

SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]


def test_deploy_registers_a_running_container(clipper, built_images, iris_example_bundle) -> None:
    conn, manager = clipper
    meta = BundleMeta.read(iris_example_bundle)
    image = default_image_name(meta.name, meta.version, "clipper", "predict_clipper")
    built_images.append(image)

    name, version = deploy_to_clipper(conn, str(iris_example_bundle), "predict_clipper", app_name="iris")

    assert (name, version) == ("irisclassifier-predict-clipper", to_clipper_name(meta.version))
    (container,) = manager.containers(name, version)
    assert container.status == "running" and image in container.image.tags
    frontend = manager.frontend
    registration = frontend.peer.wait_for_registration(60)
    assert (registration.model_name, registration.model_version) == (name, version)
    assert registration.input_type is InputType.FLOATS
    assert frontend.calls("add_model") == [
        {
            "model_name": name,
            "model_version": version,
            "labels": [],
            "input_type": "floats",
            "container_name": image,
            "model_data_path": "DEPRECATED",
            "batch_size": -1,
        }
    ]
    assert frontend.calls("add_app") == [
        {"name": "iris", "input_type": "floats", "default_output": "null", "latency_slo_micros": 100000}
    ]
    assert frontend.calls("add_model_links") == [{"app_name": "iris", "model_names": [name]}]
    assert conn.get_all_models() == [f"{name}:{version}"]
    assert conn.get_linked_models("iris") == [name]
    assert conn.get_num_replicas(name, version) == 1

    query = f"http://{conn.get_query_addr()}/iris/predict"
    assert requests.post(query, json={"input": SETOSA}, timeout=30).json()["output"] == 0
    batch = requests.post(query, json={"input_batch": [SETOSA, VIRGINICA]}, timeout=30).json()
    assert [p["output"] for p in batch["batch_predictions"]] == [0, 2]
    frontend.peer.assert_no_violations()

    # a second deploy of the same bundle under a new version keeps the app and its link
    name2, version2 = deploy_to_clipper(
        conn, iris_example_bundle, "predict_clipper", model_version=2, app_name="iris"
    )
    assert (name2, version2) == (name, "2")
    assert len(frontend.calls("add_app")) == 1 and len(frontend.calls("add_model_links")) == 1
    assert conn.get_model_info(name, "2")["is_current_version"] is True


def test_deploy_through_a_registry(
    clipper, built_images, iris_example_bundle, registry, docker_client
) -> None:
    conn, manager = clipper
    meta = BundleMeta.read(iris_example_bundle)
    image = f"{registry}/{default_image_name(meta.name, meta.version, 'clipper', 'predict_clipper')}"
    built_images.append(image)

    name, version = deploy_to_clipper(
        conn, iris_example_bundle, "predict_clipper", model_name="Iris", model_version="v1", registry=registry
    )

    assert (name, version) == ("iris", "v1")
    assert manager.frontend.calls("add_model")[0]["container_name"] == image
    repository, tag = image.rsplit(":", 1)
    tags = requests.get(f"http://{registry}/v2/{repository.split('/', 1)[1]}/tags/list", timeout=5).json()[
        "tags"
    ]
    assert tag in tags

    # the image Clipper runs comes back from the registry: drop the local name, scale up again
    peer = manager.frontend.peer
    peer.wait_for_registration(60)
    registrations = len(peer.registrations)
    manager.stop_all_model_containers()
    docker_client.images.remove(image)
    conn.set_num_replicas(name, 1, version)
    (container,) = manager.containers(name, version)
    assert image in container.image.tags
    registration = peer.wait_for_registration(60, count=registrations + 1)
    assert (registration.model_name, registration.model_version) == ("iris", "v1")
    outputs = peer.predict(
        [struct.pack("<4f", *VIRGINICA)], InputType.FLOATS, routing_id=registration.routing_id, timeout=30
    )
    assert outputs == [b"2"]
