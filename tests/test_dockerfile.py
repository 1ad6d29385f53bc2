"""The rendered Dockerfiles, entrypoints and .dockerignore (no Docker engine needed).

Snapshots live in tests/snapshots/; after a deliberate template change, regenerate them with
``BENTOLITE_UPDATE_SNAPSHOTS=1 pytest tests/test_dockerfile.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from bentolite.bundle_meta import ApiRecord, BundleMeta
from bentolite.dockerfile import (
    default_base_image,
    image_labels,
    quote,
    render_dockerfile,
    render_dockerignore,
    render_entrypoint,
    write_docker_files,
)
from bentolite.exceptions import InvalidArgument, NotFound

SNAPSHOTS = Path(__file__).parent / "snapshots"


def make_meta(**env: object) -> BundleMeta:
    return BundleMeta(
        name="IrisClassifier",
        version="1.0.20240102030405_ABCDEF",
        created_at="2024-01-02T03:04:05.000000Z",
        bentolite_version="0.1.0",
        python_version="3.11.2",
        module="iris_classifier",
        service_class="IrisClassifier",
        apis=(
            ApiRecord(name="predict", route="predict", adapter={"type": "DataframeInput"}),
            ApiRecord(
                name="predict_clipper",
                route="predict_clipper",
                adapter={"type": "ClipperFloatsInput"},
                clipper_input_type="floats",
            ),
        ),
        env={
            "python_version": "3.11",
            "requirements_txt": "env/requirements.txt",
            "bentolite_wheel": "env/wheels/bentolite-0.1.0-py3-none-any.whl",
            "system_packages": [],
            "setup_sh": None,
            "docker_base_image": None,
            **env,
        },
        description='Predicts the iris species.\n\nA "quoted" $HOME line.',
    )


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", dockerfile)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            pairs.append((keyword, args))
    return pairs


def labels_of(dockerfile: str) -> dict[str, str]:
    (args,) = [a for k, a in instructions(dockerfile) if k == "LABEL"]
    return dict(item.split("=", 1) for item in shlex.split(args))


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("BENTOLITE_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"missing snapshot {path}; run with BENTOLITE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{name} differs from its snapshot (see the module docstring)"


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_snapshots(target: str) -> None:
    meta = make_meta()
    check_snapshot(
        f"Dockerfile.{target}", render_dockerfile(meta, target, requirements=["scikit-learn==1.5.0"])
    )
    check_snapshot(f"entrypoint.{target}.sh", render_entrypoint(meta, target))


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_layers_are_ordered_for_caching(target: str) -> None:
    meta = make_meta(system_packages=["libgomp1", "curl"], setup_sh="env/setup.sh")
    steps = instructions(render_dockerfile(meta, target))
    keywords = [k for k, _ in steps]
    assert keywords[:2] == ["ARG", "FROM"]
    apt = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "apt-get install" in a)
    requirements = keywords.index("COPY")
    pip = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    setup = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "setup.sh" in a)
    bundle = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.endswith((" /bundle", " /model")))
    assert apt < requirements < pip < setup < bundle
    assert steps[requirements][1] == "env/requirements.txt /opt/bentolite/requirements.txt"
    assert steps[requirements + 1][1].startswith("env/wheels/bentolite-0.1.0-py3-none-any.whl ")
    assert "libgomp1 curl" in steps[apt][1] and "rm -rf /var/lib/apt/lists/*" in steps[apt][1]
    # nothing that changes per bundle version comes before the bundle itself
    assert "20240102030405" not in "".join(a for _, a in steps[:bundle])
    assert keywords.index("LABEL") > bundle
    assert keywords[-1] == "ENTRYPOINT" and steps[-1][1] == '["/usr/local/bin/bentolite-entrypoint"]'


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_pip_keeps_no_cache(target: str) -> None:
    steps = instructions(render_dockerfile(make_meta(), target))
    (pip,) = [a for k, a in steps if k == "RUN" and "pip install" in a]
    assert "--no-cache-dir" in pip and "-r /opt/bentolite/requirements.txt" in pip
    assert pip.count("/opt/bentolite/bentolite-0.1.0-py3-none-any.whl") == 1
    assert "PIP_NO_CACHE_DIR=1" in next(a for k, a in steps if k == "ENV")


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_runs_as_an_unprivileged_user(target: str) -> None:
    steps = instructions(render_dockerfile(make_meta(), target))
    assert ("USER", "10001") in steps
    assert any(k == "RUN" and "useradd --create-home --uid 10001" in a for k, a in steps)
    (bundle_copy,) = [a for k, a in steps if k == "COPY" and a.startswith("--chown")]
    assert bundle_copy.startswith("--chown=10001:10001 . ")
    assert [k for k, _ in steps].index("USER") > [k for k, _ in steps].index("RUN")


def test_http_image_serves_the_bundle_and_checks_healthz() -> None:
    dockerfile = render_dockerfile(make_meta(), "http")
    steps = instructions(dockerfile)
    assert ("EXPOSE", "3000") in steps and ("WORKDIR", "/bundle") in steps
    (health,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert "http://127.0.0.1:3000/healthz" in health
    entrypoint = render_entrypoint(make_meta(), "http")
    assert 'exec bentolite serve /bundle --host 0.0.0.0 --port 3000 "$@"' in entrypoint


def test_clipper_image_layout() -> None:
    steps = instructions(render_dockerfile(make_meta(), "clipper"))
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "CLIPPER_MODEL_PATH=/model" in env and "CLIPPER_PORT=7000" in env
    assert "BENTOLITE_READY_FILE=/run/bentolite/model_is_ready.check" in env
    assert "BENTOLITE_METRICS_PORT=1390" in env
    (health,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert health.endswith('CMD ["test", "-f", "/model_is_ready.check"]')
    # the path Clipper probes links to the file the unprivileged runtime writes
    (user_setup,) = [a for k, a in steps if k == "RUN" and "useradd" in a]
    assert "ln -s /run/bentolite/model_is_ready.check /model_is_ready.check" in user_setup
    assert "chown 10001:10001 /run/bentolite" in user_setup
    entrypoint = render_entrypoint(make_meta(), "clipper")
    assert 'exec python -m bentolite.clipper /model --api predict_clipper "$@"' in entrypoint


def test_labels() -> None:
    meta = make_meta()
    labels = labels_of(render_dockerfile(meta, "clipper", requirements=["scikit-learn==1.5.0"]))
    assert labels["ai.bentolite.bundle"] == "IrisClassifier:1.0.20240102030405_ABCDEF"
    assert labels["ai.bentolite.target"] == "clipper"
    assert labels["ai.bentolite.api"] == "predict_clipper"
    assert labels["ai.bentolite.clipper_input_type"] == "floats"
    assert json.loads(labels["ai.bentolite.requirements"]) == ["scikit-learn==1.5.0"]
    assert [a["name"] for a in json.loads(labels["ai.bentolite.apis"])] == ["predict", "predict_clipper"]
    assert labels["org.opencontainers.image.title"] == "IrisClassifier"
    assert labels["org.opencontainers.image.version"] == meta.version
    assert labels["org.opencontainers.image.created"] == meta.created_at
    assert labels["org.opencontainers.image.base.name"] == "python:3.11-slim"
    assert labels["org.opencontainers.image.description"] == "Predicts the iris species."
    http = labels_of(render_dockerfile(meta, "http"))
    assert http["ai.bentolite.target"] == "http" and "ai.bentolite.api" not in http


def test_label_values_are_quoted_for_docker() -> None:
    value = 'a "b" \\c $HOME\nnext'
    assert quote(value) == '"a \\"b\\" \\\\c \\$HOME next"'
    labels = image_labels(make_meta(), "http", None, "python:3.11-slim")
    assert set(labels) >= {"ai.bentolite.bundle", "org.opencontainers.image.title"}


def test_base_image_choice() -> None:
    assert default_base_image(make_meta()) == "python:3.11-slim"
    assert default_base_image(make_meta(python_version="3.10")) == "python:3.10-slim"
    chosen = make_meta(docker_base_image="registry.example.com/py:3.11")
    assert default_base_image(chosen) == "registry.example.com/py:3.11"
    for dockerfile in (
        render_dockerfile(chosen, "http"),
        render_dockerfile(make_meta(), "http", base_image="registry.example.com/py:3.11"),
    ):
        assert instructions(dockerfile)[:2] == [
            ("ARG", "BASE_IMAGE=registry.example.com/py:3.11"),
            ("FROM", "${BASE_IMAGE}"),
        ]


def test_clipper_target_needs_a_clipper_api() -> None:
    meta = make_meta()
    with pytest.raises(InvalidArgument, match="takes DataframeInput, which Clipper cannot call"):
        render_dockerfile(meta, "clipper", api="predict")
    with pytest.raises(NotFound, match="no API 'nope'"):
        render_dockerfile(meta, "clipper", api="nope")
    with pytest.raises(InvalidArgument, match="applies only to --target clipper"):
        render_dockerfile(meta, "http", api="predict")
    with pytest.raises(InvalidArgument, match="unknown image target 'k8s'"):
        render_dockerfile(meta, "k8s")


def test_dockerignore_keeps_caches_out() -> None:
    ignored = [line for line in render_dockerignore().splitlines() if line and not line.startswith("#")]
    assert "**/__pycache__" in ignored and "**/*.py[co]" in ignored


def test_entrypoint_runs_other_commands_and_passes_options(tmp_path: Path) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(render_entrypoint(make_meta(), "http").replace("exec bentolite", "exec echo bentolite"))
    run = lambda *args: subprocess.run(["sh", str(script), *args], capture_output=True, text=True).stdout  # noqa: E731
    assert run() == "bentolite serve /bundle --host 0.0.0.0 --port 3000\n"
    assert run("--workers", "2") == "bentolite serve /bundle --host 0.0.0.0 --port 3000 --workers 2\n"
    assert run("echo", "hello") == "hello\n"


def test_write_docker_files(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "requirements.txt").write_text("scikit-learn==1.5.0\n\n")
    write_docker_files(tmp_path, make_meta(), "clipper")
    assert labels_of((tmp_path / "Dockerfile").read_text())["ai.bentolite.target"] == "clipper"
    assert json.loads(labels_of((tmp_path / "Dockerfile").read_text())["ai.bentolite.requirements"]) == [
        "scikit-learn==1.5.0"
    ]
    entrypoint = tmp_path / "env" / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / ".dockerignore").read_text() == render_dockerignore()


def test_saved_bundle_builds_the_http_image_as_it_stands(tmp_path: Path, iris_model) -> None:
    from sample_services import IrisClassifier

    svc = IrisClassifier().pack("model", iris_model[0])
    path = Path(svc.save_to_dir(tmp_path / "bundle"))
    meta = BundleMeta.read(path)
    assert (path / "Dockerfile").read_text() == render_dockerfile(
        meta, "http", requirements=(path / "env" / "requirements.txt").read_text().split()
    )
    assert (path / "env" / "entrypoint.sh").read_text() == render_entrypoint(meta, "http")
    assert (path / ".dockerignore").is_file()


def test_bundle_environment_variables_precede_the_installs() -> None:
    meta = make_meta(docker_env={"HTTP_PROXY": "http://proxy:3128", "GREETING": 'say "hi" $USER'})
    steps = instructions(render_dockerfile(meta, "http"))
    envs = [i for i, (k, _) in enumerate(steps) if k == "ENV"]
    pip = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    assert len(envs) == 2 and envs[1] < pip
    # Docker unescapes \" and \$ inside double quotes, so the value arrives as written
    assert steps[envs[1]][1] == 'HTTP_PROXY="http://proxy:3128" GREETING="say \\"hi\\" \\$USER"'


def test_requirements_label_leaves_pip_options_out(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "requirements.txt").write_text(
        "--index-url https://user:secret@pypi.example.com/simple\nscikit-learn==1.5.0\n"
    )
    write_docker_files(tmp_path, make_meta(), "http")
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert "secret" not in dockerfile
    assert json.loads(labels_of(dockerfile)["ai.bentolite.requirements"]) == ["scikit-learn==1.5.0"]
