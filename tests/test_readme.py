"""The README's promises: its test command is CI's, its code runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bentolite.bundle_meta import BundleMeta
from bentolite.image_names import default_image_name

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def setup_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "README must open with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2
    assert "examples/iris_classifier/demo.sh" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci


def test_readme_python_examples_run(tmp_path, monkeypatch, iris_model):
    blocks = python_blocks()
    service_block = next(b for b in blocks if b.startswith("# iris_classifier.py"))
    (tmp_path / "iris_classifier.py").write_text(service_block)
    monkeypatch.syspath_prepend(str(tmp_path))
    usage = next(b for b in blocks if "svc.save()" in b)
    namespace: dict = {}
    exec(compile(usage, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["svc"].predict_clipper([namespace["iris"].data[0]]).tolist() == [0]
    assert namespace["same"].version == namespace["svc"].version


@pytest.mark.docker
def test_readme_deploy_steps_run(clipper, built_images, iris_example_bundle, store_home, monkeypatch):
    """The steps of "Deploying to Clipper", with the one-machine cluster of tests/clipper_cluster.py
    standing in for the one DockerContainerManager would start."""
    import clipper_admin

    conn, manager = clipper
    meta = BundleMeta.read(iris_example_bundle)
    # the README deploys IrisClassifier:latest: the session's iris bundle, so its image is reused
    shutil.copytree(iris_example_bundle, store_home / "bundles" / meta.name / meta.version)
    built_images.append(default_image_name(meta.name, meta.version, "clipper", "predict_clipper"))
    monkeypatch.setattr(clipper_admin, "DockerContainerManager", lambda: manager)
    blocks = python_blocks()
    deploy = next(b for b in blocks if "cl.start_clipper()" in b)
    query = next(b for b in blocks if "cl.get_query_addr()" in b)

    namespace: dict = {}
    exec(compile(deploy, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    # the README says to ask again while a new container connects; here, wait for it instead
    manager.frontend.peer.wait_for_registration(60)
    exec(compile(query, "README.md", "exec"), namespace)  # noqa: S102

    assert namespace["response"].json()["output"] == 2
    assert conn.get_linked_models("bentolite-iris") == [namespace["model"]]
    assert manager.frontend.calls("add_app")[0]["input_type"] == "floats"
