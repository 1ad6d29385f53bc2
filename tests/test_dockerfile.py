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
import sys
from pathlib import Path

import attrs
import pytest

from bentolite.bundle_meta import ApiRecord, BundleMeta
from bentolite.dockerfile import (
    default_base_image,
    image_labels,
    quote,
    read_requirements,
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
            "locked": True,
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

    def index(keyword: str, needle: str) -> int:
        (found,) = [i for i, (k, a) in enumerate(steps) if k == keyword and needle in a]
        return found

    apt = index("RUN", "apt-get install")
    lock_copy = index("COPY", "env/requirements.txt")
    lock_install = index("RUN", "-r /opt/bentolite/requirements.txt")
    wheel_copy = index("COPY", "env/wheels/")
    wheel_install = index("RUN", "pip install --no-cache-dir --no-compile --no-deps /opt/bentolite/bentolite")
    setup = index("RUN", "setup.sh")
    user = index("RUN", "useradd")
    bundle_dir = "/model" if target == "clipper" else "/bundle"
    artifacts = index("COPY", f"artifacts {bundle_dir}/artifacts")
    source = index("COPY", f"src {bundle_dir}/src")
    assert apt < lock_copy < lock_install < wheel_copy < wheel_install < setup < user < artifacts < source
    assert steps[lock_copy][1] == "env/requirements.txt /opt/bentolite/requirements.txt"
    assert "libgomp1 curl" in steps[apt][1] and "rm -rf /var/lib/apt/lists/*" in steps[apt][1]
    # the artifacts are copied once, on their own; nothing else copies the whole bundle
    assert not [a for k, a in steps if k == "COPY" and a.split()[-2:-1] == ["."]]
    assert sum("artifacts" in a for k, a in steps if k == "COPY") == 1
    # nothing that changes per bundle version comes before the bundle itself
    assert "20240102030405" not in "".join(a for _, a in steps[:artifacts])
    assert keywords.index("LABEL") > source
    assert keywords[-1] == "ENTRYPOINT" and steps[-1][1] == '["/usr/local/bin/bentolite-entrypoint"]'


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_pip_installs_the_lock_as_it_is(target: str) -> None:
    steps = instructions(render_dockerfile(make_meta(), target))
    lock, wheel = [a for k, a in steps if k == "RUN" and "pip install" in a]
    assert "--no-cache-dir" in lock and "--no-deps -r /opt/bentolite/requirements.txt" in lock
    assert "--no-deps /opt/bentolite/bentolite-0.1.0-py3-none-any.whl" in wheel
    assert "PIP_NO_CACHE_DIR=1" in next(a for k, a in steps if k == "ENV")
    # loose requirements (python.lock: false) let pip resolve the dependencies
    loose = [a for k, a in instructions(render_dockerfile(make_meta(locked=False), target)) if k == "RUN"]
    assert not any("--no-deps" in a for a in loose)


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_bytecode_is_compiled_unless_turned_off(target: str) -> None:
    runs = [a for k, a in instructions(render_dockerfile(make_meta(), target)) if k == "RUN"]
    assert sum("/opt/bentolite/slim.py --compile" in a for a in runs) == 2
    assert any("compileall" in a and a.endswith("/src") for a in runs)
    off = [
        a for k, a in instructions(render_dockerfile(make_meta(compile_bytecode=False), target)) if k == "RUN"
    ]
    assert not any("--compile" in a or "compileall" in a for a in off)
    assert sum("/opt/bentolite/slim.py" in a for a in off) == 2  # trimming stays


@pytest.mark.parametrize("target", ["http", "clipper"])
def test_runs_as_an_unprivileged_user(target: str) -> None:
    steps = instructions(render_dockerfile(make_meta(), target))
    assert ("USER", "10001") in steps
    assert any(k == "RUN" and "useradd --create-home --uid 10001" in a for k, a in steps)
    bundle_copies = [a for k, a in steps if k == "COPY" and (" /bundle" in a or " /model" in a)]
    assert len(bundle_copies) == 4 and all(a.startswith("--chown=10001:10001 ") for a in bundle_copies)
    assert [k for k, _ in steps].index("USER") > [k for k, _ in steps].index("RUN")


def test_http_image_serves_the_bundle_and_checks_the_recorded_port() -> None:
    dockerfile = render_dockerfile(make_meta(), "http")
    steps = instructions(dockerfile)
    assert ("EXPOSE", "3000") in steps and ("WORKDIR", "/bundle") in steps
    (health,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert "/run/bentolite/port" in health and "/healthz" in health
    (user_setup,) = [a for k, a in steps if k == "RUN" and "useradd" in a]
    assert "chown 10001:10001 /run/bentolite" in user_setup


def test_healthcheck_reads_the_recorded_port(tmp_path: Path) -> None:
    from live_server import free_port

    from bentolite.dockerfile import HEALTHCHECK, PORT_FILE

    code = HEALTHCHECK.replace(PORT_FILE, str(tmp_path / "port"))
    port = free_port()
    check = lambda **env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True
    )
    import http.server
    import threading

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert check(PORT=str(port)).returncode == 0  # no file: the variables' port
        assert check(BENTOLITE_PORT=str(port), PORT="1").returncode == 0
        closed = str(free_port())
        assert check(PORT=closed).returncode != 0  # nothing answers there
        (tmp_path / "port").write_text(f"{port}\n")
        assert check(PORT=closed, BENTOLITE_PORT=closed).returncode == 0  # the recorded port wins
    finally:
        server.shutdown()
        server.server_close()


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
    port_file = tmp_path / "port"
    text = render_entrypoint(make_meta(), "http").replace("exec bentolite", "exec echo bentolite")
    script.write_text(text.replace("/run/bentolite/port", str(port_file)))

    def run(*args: str, **env: str) -> tuple[str, str]:
        out = subprocess.run(
            ["sh", str(script), *args],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], **env},
        ).stdout
        return out, port_file.read_text().strip() if port_file.exists() else ""

    serve = "bentolite serve /bundle --host 0.0.0.0 --port"
    assert run() == (f"{serve} 3000\n", "3000")
    assert run("--workers", "2") == (f"{serve} 3000 --workers 2\n", "3000")
    # --port > BENTOLITE_PORT > PORT > 3000; the recorded port is the one served
    assert run(PORT="8080") == (f"{serve} 8080\n", "8080")
    assert run(PORT="8080", BENTOLITE_PORT="9090") == (f"{serve} 9090\n", "9090")
    assert run("--port", "7070", PORT="8080") == (f"{serve} 7070 --port 7070\n", "7070")
    assert run("--port=6060", BENTOLITE_PORT="9090")[1] == "6060"
    assert run(BENTOLITE_HOST="127.0.0.1")[0] == "bentolite serve /bundle --host 127.0.0.1 --port 3000\n"
    assert run("echo", "hello")[0] == "hello\n"


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
        meta, "http", requirements=read_requirements(path, meta)
    )
    assert (path / "env" / "slim.py").is_file() and (path / "artifacts").is_dir()
    assert (path / "env" / "entrypoint.sh").read_text() == render_entrypoint(meta, "http")
    assert (path / ".dockerignore").is_file()


def test_only_the_variables_installs_read_precede_them() -> None:
    docker_env = {
        "HTTP_PROXY": "http://proxy:3128",
        "no_proxy": "localhost",
        "PIP_INDEX_URL": "https://pypi.example.com/simple",
        "GREETING": 'say "hi" $USER',
        "OMP_NUM_THREADS": "1",
    }
    steps = instructions(render_dockerfile(make_meta(docker_env=docker_env, setup_sh="env/setup.sh"), "http"))
    envs = [i for i, (k, _) in enumerate(steps) if k == "ENV"]
    first_pip = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    setup = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "setup.sh" in a)
    artifacts = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and "artifacts" in a)
    assert len(envs) == 3 and envs[1] < first_pip and setup < envs[2] < artifacts
    assert steps[envs[1]][1] == (
        'HTTP_PROXY="http://proxy:3128" no_proxy="localhost" PIP_INDEX_URL="https://pypi.example.com/simple"'
    )
    # Docker unescapes \" and \$ inside double quotes, so the value arrives as written
    assert steps[envs[2]][1] == 'GREETING="say \\"hi\\" \\$USER" OMP_NUM_THREADS="1"'


def test_requirements_label_leaves_pip_options_out(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "requirements.txt").write_text(
        "--index-url https://user:secret@pypi.example.com/simple\nscikit-learn==1.5.0\n"
    )
    write_docker_files(tmp_path, make_meta(), "http")
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert "secret" not in dockerfile
    assert json.loads(labels_of(dockerfile)["ai.bentolite.requirements"]) == ["scikit-learn==1.5.0"]


def test_bundle_labels_and_extra_labels_become_image_labels(tmp_path: Path, iris_model) -> None:
    from cli_runner import CliRunner
    from sample_services import IrisClassifier

    from bentolite.cli.main import cli

    meta = attrs.evolve(make_meta(), labels={"owner": "ml-team", "ai.bentolite.bundle": "not this"})
    labels = labels_of(render_dockerfile(meta, "http", extra_labels={"stage": "dev", "owner": "ops"}))
    assert labels["owner"] == "ops" and labels["stage"] == "dev"  # --label wins over the bundle's
    assert labels["ai.bentolite.bundle"] == meta.tag  # bentolite's own cannot be replaced

    from bentolite.bundle import save_bundle

    svc = IrisClassifier().pack("model", iris_model[0])
    bundle = save_bundle(svc, target=tmp_path / "bundle", labels={"team": "ml"})
    assert labels_of((Path(bundle) / "Dockerfile").read_text())["team"] == "ml"
    result = CliRunner().invoke(
        cli,
        ["containerize", str(bundle), "--label", "commit=abc123", "--output-context", str(tmp_path / "ctx")],
    )
    assert result.exit_code == 0, result.output
    written = labels_of((tmp_path / "ctx" / "Dockerfile").read_text())
    assert written["team"] == "ml" and written["commit"] == "abc123"
    result = CliRunner().invoke(
        cli, ["containerize", str(bundle), "--label", "nokey", "--output-context", "x"]
    )
    assert result.exit_code == 2 and "--label 'nokey': expected KEY=VALUE" in result.stderr
