"""Build contexts, image names, build-stream handling and the CLI, without a Docker engine
(the engine tests are in test_containerize_docker.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_runner import CliRunner

import bentolite
from bentolite import image_build
from bentolite.bundle_meta import BundleMeta
from bentolite.cli.main import cli
from bentolite.exceptions import BuildError, BundleError, InvalidArgument, NotFound
from bentolite.image_build import BuildEvent, build_image, containerize, image_name, write_build_context

NO_ENGINE = "unix:///nonexistent/bentolite-test.sock"


@pytest.fixture
def iris_bundle(tmp_path: Path, iris_model) -> Path:
    from sample_services import IrisClassifier

    svc = IrisClassifier().pack("model", iris_model[0])
    return Path(svc.save_to_dir(tmp_path / "bundle", version="1.0.20240102_AB12"))


def test_build_context_is_the_bundle_plus_the_target_files(iris_bundle: Path, tmp_path: Path) -> None:
    (iris_bundle / "src" / "__pycache__").mkdir()
    (iris_bundle / "src" / "__pycache__" / "x.pyc").write_bytes(b"")
    out = write_build_context(iris_bundle, tmp_path / "ctx", "clipper")
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    bundle_files = {p.relative_to(iris_bundle).as_posix() for p in iris_bundle.rglob("*") if p.is_file()}
    assert files == bundle_files - {"src/__pycache__/x.pyc"}
    assert (
        "python -m bentolite.clipper /model --api predict_clipper" in (out / "env/entrypoint.sh").read_text()
    )
    assert 'ai.bentolite.target="clipper"' in (out / "Dockerfile").read_text()
    # the bundle itself is untouched
    assert 'ai.bentolite.target="http"' in (iris_bundle / "Dockerfile").read_text()


def test_build_context_from_a_tag_or_a_saved_service(tmp_path: Path, iris_model) -> None:
    from sample_services import IrisClassifier

    svc = IrisClassifier().pack("model", iris_model[0])
    with pytest.raises(BundleError, match="has not been saved"):
        write_build_context(svc, tmp_path / "a")
    svc.save(version="7")
    assert (write_build_context(svc, tmp_path / "a") / "bentolite.yaml").is_file()
    out = write_build_context("IrisClassifier:7", tmp_path / "b", base_image="python:3.11")
    assert "ARG BASE_IMAGE=python:3.11\n" in (out / "Dockerfile").read_text()


def test_build_context_refuses_a_non_empty_directory(iris_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "keep").write_text("")
    with pytest.raises(InvalidArgument, match="not an empty directory"):
        write_build_context(iris_bundle, tmp_path / "ctx")
    (tmp_path / "empty").mkdir()
    assert (write_build_context(iris_bundle, tmp_path / "empty") / "Dockerfile").is_file()


def test_image_name_choice(iris_bundle: Path) -> None:
    meta = BundleMeta.read(iris_bundle)
    assert image_name(meta) == "irisclassifier:1-0-20240102-ab12"
    assert (
        image_name(meta, "clipper", "predict_clipper")
        == "clipper-irisclassifier-predict-clipper:1-0-20240102-ab12"
    )
    assert image_name(meta, tag="127.0.0.1:5000/iris") == "127.0.0.1:5000/iris:1-0-20240102-ab12"
    assert image_name(meta, tag="iris:latest") == "iris:latest"
    with pytest.raises(InvalidArgument, match="not a valid repository name"):
        image_name(meta, tag="Iris")


def test_target_and_api_are_checked_before_any_engine(iris_bundle: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(InvalidArgument, match="applies only to --target clipper"):
        containerize(iris_bundle, "http", api="predict")
    with pytest.raises(InvalidArgument, match="which Clipper cannot call"):
        containerize(iris_bundle, "clipper", api="predict")
    with pytest.raises(NotFound):
        containerize(iris_bundle, "clipper", api="missing")
    with pytest.raises(InvalidArgument, match="has no registry"):
        containerize(iris_bundle, push=True)


def test_no_engine_names_docker_host(iris_bundle: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(BuildError, match=f"cannot reach a Docker engine at DOCKER_HOST={NO_ENGINE}") as info:
        bentolite.containerize(iris_bundle)
    assert info.value.exit_code == 1


class FakeEngine:
    """Answers ``build`` with canned JSON messages, as docker.APIClient(decode=True) yields them."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.kwargs: dict[str, Any] = {}

    def build(self, **kwargs: Any):
        self.kwargs = kwargs
        assert (Path(kwargs["path"]) / "Dockerfile").is_file()
        yield from self.messages

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:" + "ab" * 32, "Size": 412_000_000}

    def close(self) -> None:
        pass


FAILING_BUILD = [
    {"stream": "Step 1/3 : FROM python:3.11-slim"},
    {"stream": "\n"},
    {"stream": " ---> f1337bad2d5e\n"},
    {"stream": "Step 2/3 : RUN pip install nothing-by-this-name\n"},
    {"stream": " ---> Running in 0123\n"},
    {"stream": "\x1b[91mERROR: Could not find a version that satisfies the requirement "},
    {"stream": "nothing-by-this-name\n"},
    {"stream": "ERROR: No matching distri"},
    {"stream": "bution found\n"},
    {
        "errorDetail": {
            "code": 1,
            "message": "The command '/bin/sh -c pip install' returned a non-zero code: 1",
        },
        "error": "The command '/bin/sh -c pip install' returned a non-zero code: 1",
    },
]


def test_a_failed_step_carries_its_output(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    events: list[BuildEvent] = []
    with pytest.raises(BuildError) as info:
        build_image(FakeEngine(FAILING_BUILD), tmp_path, "x:1", on_event=events.append)
    assert str(info.value) == (
        "building x:1 failed at step 2/3 (RUN pip install nothing-by-this-name): exit code 1"
    )
    assert info.value.detail == (
        "ERROR: Could not find a version that satisfies the requirement nothing-by-this-name\n"
        "ERROR: No matching distribution found"
    )
    assert [e.kind for e in events][:3] == ["step", "output", "step"]


def test_build_options_reach_the_engine(iris_bundle: Path) -> None:
    engine = FakeEngine([{"stream": "Step 1/1 : FROM x\n"}, {"aux": {"ID": "sha256:" + "cd" * 32}}])
    events: list[BuildEvent] = []
    image = containerize(
        iris_bundle,
        "clipper",
        build_args={"HTTP_PROXY": "http://proxy:3128"},
        platform="linux/amd64",
        no_cache=True,
        on_event=events.append,
        docker_client=engine,
    )
    assert image == "clipper-irisclassifier-predict-clipper:1-0-20240102-ab12"
    assert engine.kwargs["tag"] == image and engine.kwargs["nocache"] is True
    assert engine.kwargs["buildargs"] == {"HTTP_PROXY": "http://proxy:3128"}
    assert engine.kwargs["platform"] == "linux/amd64" and engine.kwargs["pull"] is False
    assert events[-1] == BuildEvent("info", f"built {image} (sha256:cdcdcdcdcdcd, 412 MB)")


# --- the command line ----------------------------------------------------------------------------


def test_cli_output_context_needs_no_engine(iris_bundle: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    out = tmp_path / "ctx"
    result = CliRunner().invoke(
        cli, ["containerize", str(iris_bundle), "--target", "clipper", "--output-context", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert f"docker build -t clipper-irisclassifier-predict-clipper:1-0-20240102-ab12 {out}" in result.stderr
    assert (out / "Dockerfile").is_file() and (out / "artifacts").is_dir()


def test_cli_without_engine_exits_1_naming_docker_host(iris_bundle: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    result = CliRunner().invoke(cli, ["containerize", str(iris_bundle)])
    assert result.exit_code == 1
    assert f"DOCKER_HOST={NO_ENGINE}" in result.stderr


def test_cli_failed_step_shows_its_output(iris_bundle: Path, monkeypatch) -> None:
    monkeypatch.setattr(image_build, "api_client", lambda client=None: FakeEngine(FAILING_BUILD))
    result = CliRunner().invoke(cli, ["containerize", str(iris_bundle)])
    assert result.exit_code == 1
    assert "ERROR: No matching distribution found" in result.stderr
    assert "error: building irisclassifier:1-0-20240102-ab12 failed at step 2/3 (RUN pip" in result.stderr


def test_cli_usage_errors(iris_bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["containerize", str(iris_bundle), "--build-arg", "NOEQUALS"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr
    result = runner.invoke(cli, ["containerize", str(iris_bundle), "--target", "k8s"])
    assert result.exit_code == 2
    result = runner.invoke(cli, ["containerize", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a bundle directory" in result.stderr


def test_python_api_is_lazy_and_stays_a_function() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bentolite, bentolite.image_build, bentolite.clipper.deploy;"
        "assert bentolite.containerize is bentolite.image_build.containerize;"
        "assert 'docker' not in sys.modules, 'docker imported before a build'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_output_context_prints_the_matching_build_command(iris_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    args = ["--output-context", str(out), "-t", "iris", "--build-arg", "A=b c", "--no-cache"]
    result = CliRunner().invoke(cli, ["containerize", str(iris_bundle), *args])
    assert result.exit_code == 0, result.output
    assert f"docker build -t iris:1-0-20240102-ab12 --no-cache '--build-arg=A=b c' {out}" in result.stderr
    result = CliRunner().invoke(
        cli, ["containerize", str(iris_bundle), "--output-context", str(out), "--push"]
    )
    assert result.exit_code == 2 and "drop --push" in result.stderr
