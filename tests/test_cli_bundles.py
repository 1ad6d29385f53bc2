"""The build and bundle commands (bentolite/cli/build.py, bentolite/cli/bundles.py)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cli_runner import CliRunner

import bentolite
from bentolite import store
from bentolite.adapters.base import jsonable
from bentolite.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 5.1, 1.6], [6.5, 3.0, 5.8, 2.2]]

CALC = '''
from bentolite import Service, api, artifacts
from bentolite.adapters import FileInput, JsonInput, NdarrayInput, StringInput
from bentolite.artifacts import JSONArtifact


@artifacts([JSONArtifact("config")])
class Calc(Service):
    """Small APIs of every shape."""

    @api(input=JsonInput(), batch=True)
    def double(self, values):
        return [self.artifacts.config["factor"] * v for v in values]

    @api(input=StringInput())
    def shout(self, text):
        return text.upper() + "!"

    @api(input=FileInput())
    def size(self, data):
        return {"bytes": len(data)}

    @api(input=NdarrayInput(dtype="float64"))
    def total(self, arr):
        return arr.sum(axis=-1)

    @api(input=JsonInput())
    async def later(self, value):
        return {"got": value}

    @api(input=JsonInput())
    def broken(self, value):
        raise ValueError("this API always fails")
'''


def invoke(*args: str, input: str | None = None):  # noqa: A002 - click's name
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result, code: int, fragment: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def calc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "calc"
    directory.mkdir()
    (directory / "calc_service.py").write_text(CALC)
    (directory / "config.json").write_text('{"factor": 2}')
    (directory / "bentofile.yaml").write_text(
        'service: "calc_service.py:Calc"\nartifacts:\n  config: config.json\n'
    )
    return directory


@pytest.fixture
def iris_dir(tmp_path: Path, iris_model) -> Path:
    directory = shutil.copytree(EXAMPLES / "iris_classifier", tmp_path / "iris")
    (directory / "model.pkl").write_bytes(pickle.dumps(iris_model[0]))
    return directory


def build_tag(bentofile: Path, *extra: str) -> str:
    result = invoke("build", "-f", str(bentofile), "-o", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["tag"]


# --- build ---------------------------------------------------------------------------------------


def test_build_prints_the_tag_and_path(iris_dir, monkeypatch):
    monkeypatch.chdir(iris_dir)
    result = invoke("build", "--version", "1.0", "--label", "stage=dev")
    assert result.exit_code == 0, result.output
    path = store.bundles_root() / "IrisClassifier" / "1.0"
    assert result.stdout.splitlines() == ["Built IrisClassifier:1.0", f"  {path}"]
    assert yaml.safe_load((path / "bentolite.yaml").read_text())["labels"]["stage"] == "dev"


def test_build_output_formats(calc_dir):
    as_json = json.loads(invoke("build", "-f", str(calc_dir / "bentofile.yaml"), "-o", "json").stdout)
    assert {"tag", "name", "version", "created_at", "path", "size_bytes", "apis"} <= set(as_json)
    assert as_json["name"] == "Calc" and Path(as_json["path"]).is_dir()
    as_yaml = yaml.safe_load(invoke("build", "-f", str(calc_dir), "-o", "yaml").stdout)  # a folder works too
    assert as_yaml["name"] == "Calc" and as_yaml["tag"] != as_json["tag"]


BAD_BENTOFILES = {
    "unknown key": (
        "service: calc_service.py:Calc\nlables: {a: b}\n",
        2,
        "unknown key 'lables'; did you mean 'labels'?",
    ),
    "unknown nested key": (
        "service: calc_service.py:Calc\ndocker:\n  base_imag: x\n",
        3,
        "did you mean 'docker.base_image'?",
    ),
    "wrong type": (
        "service: calc_service.py:Calc\ninclude: '*.py'\n",
        2,
        "include: expected a list of strings",
    ),
    "wrong boolean": (
        "service: calc_service.py:Calc\npython:\n  lock: maybe\n",
        3,
        "python.lock: expected true or false",
    ),
    "missing service": ("name: calc\n", 1, "service: missing"),
    "malformed service": ("service: calc_service.py\n", 1, "expected 'path/to/module.py:attr'"),
    "missing module file": ("service: nope.py:Calc\n", 1, "service: file 'nope.py' does not exist"),
    "missing artifact file": (
        "service: calc_service.py:Calc\nartifacts:\n  config: nope.json\n",
        3,
        "artifacts.config: file 'nope.json' does not exist",
    ),
    "missing requirements file": (
        "service: calc_service.py:Calc\npython:\n  requirements_txt: reqs.txt\n",
        3,
        "python.requirements_txt: file 'reqs.txt' does not exist",
    ),
    "missing setup script": (
        "service: calc_service.py:Calc\ndocker:\n  setup_script: setup.sh\n",
        3,
        "docker.setup_script: file 'setup.sh' does not exist",
    ),
    "undeclared artifact": (
        "service: calc_service.py:Calc\nartifacts:\n  confg: config.json\n",
        3,
        "declares no artifact 'confg' (declared: config); did you mean 'config'?",
    ),
    "artifact not listed": (
        "service: calc_service.py:Calc\n",
        1,
        "needs artifact(s) config, which are not packed",
    ),
    "attribute typo": ("service: calc_service.py:Clac\n", 1, "has no attribute 'Clac'; did you mean 'Calc'?"),
    "not a service": ("service: calc_service.py:api\n", 1, "not a bentolite.Service subclass or instance"),
    "no such module": ("service: calc_pkg.service:Calc\n", 1, "no module 'calc_pkg.service'"),
    "bad package": (
        "service: calc_service.py:Calc\npython:\n  packages: ['a b c']\n",
        3,
        "python.packages[0]",
    ),
    "bad name": (
        "service: calc_service.py:Calc\nname: my calc\n",
        2,
        "name: 'my calc' is not a valid bundle name",
    ),
    "duplicate key": ("service: calc_service.py:Calc\nservice: x.py:Y\n", 2, "service: appears twice"),
    "invalid yaml": ("service: calc_service.py:Calc\nlabels: {a: b\n", "3:1", "not valid YAML"),
    "deeply nested": ("service: calc_service.py:Calc\nlabels: " + "[" * 20000 + "\n", "2:72", "nested more"),
    "empty file": ("", 1, "the file is empty"),
}


@pytest.mark.parametrize("case", list(BAD_BENTOFILES), ids=list(BAD_BENTOFILES))
def test_each_validation_error_is_one_line_exit_2(calc_dir, case):
    text, line, fragment = BAD_BENTOFILES[case]
    bentofile = calc_dir / "bentofile.yaml"
    bentofile.write_text(text)
    message = assert_one_line_error(invoke("build", "-f", str(bentofile)), 2, fragment)
    assert message.startswith(f"error: {bentofile}:{line}: "), message
    assert store.list_bundles() == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-f", "missing/bentofile.yaml"], "missing/bentofile.yaml: no such file"),
        (["--label", "no-equals-sign"], "--label 'no-equals-sign': expected KEY=VALUE"),
        (["--version", "a b"], "version 'a b' is not valid"),
    ],
    ids=["no bentofile", "bad label", "bad version"],
)
def test_bad_build_arguments_exit_2(calc_dir, monkeypatch, args, fragment):
    monkeypatch.chdir(calc_dir)
    assert_one_line_error(invoke("build", *args), 2, fragment)


def test_a_failure_in_user_code_exits_1_and_debug_shows_the_traceback(calc_dir):
    (calc_dir / "calc_service.py").write_text("import numpy\nnumpy.this_does_not_exist\n")
    bentofile = str(calc_dir / "bentofile.yaml")
    assert_one_line_error(
        invoke("build", "-f", bentofile), 1, "importing calc_service failed: AttributeError"
    )
    result = invoke("--debug", "build", "-f", bentofile)
    assert result.exit_code != 0 and isinstance(result.exception, bentolite.BentoliteError)


# --- list, get, delete, export, import -----------------------------------------------------------


def test_list_get_delete_export_import_round_trip(iris_dir, tmp_path):
    tag = build_tag(iris_dir / "bentofile.yaml")
    other = build_tag(iris_dir / "bentofile.yaml", "--version", "2.0")

    table = invoke("list")
    assert table.exit_code == 0 and tag in table.stdout and other in table.stdout
    listed = json.loads(invoke("list", "IrisClassifier", "-o", "json").stdout)
    assert [b["tag"] for b in listed] == [tag, other]
    for record in listed:
        assert {"tag", "name", "version", "created_at", "path", "size_bytes", "apis"} <= set(record)
        assert [a["name"] for a in record["apis"]] == ["predict", "predict_clipper"]
    assert yaml.safe_load(invoke("list", "-o", "yaml").stdout) == listed
    assert json.loads(invoke("list", "Nobody", "-o", "json").stdout) == []

    got = yaml.safe_load(invoke("get", tag).stdout)
    assert got["tag"] == tag and got["artifacts"][0]["name"] == "model" and got["env"]["requirements_txt"]
    assert json.loads(invoke("get", "IrisClassifier", "-o", "json").stdout)["tag"] == other  # latest

    expected = jsonable(bentolite.load(tag).predict(pd.DataFrame(ROWS)))
    archive = tmp_path / "iris.bento"
    result = invoke("export", tag, str(archive))
    assert result.exit_code == 0 and archive.is_file(), result.output
    assert invoke("delete", tag, "-y").stdout == f"Deleted {tag}\n"
    assert [b.tag for b in store.list_bundles()] == [other]

    result = invoke("import", str(archive))
    assert result.exit_code == 0 and result.stdout.startswith(f"Imported {tag} to "), result.output
    assert jsonable(bentolite.load(tag).predict(pd.DataFrame(ROWS))) == expected
    assert json.loads(invoke("run", tag, "predict", "--input", json.dumps(ROWS)).stdout) == expected

    assert_one_line_error(invoke("import", str(archive)), 2, "already in the store; pass --force")
    assert invoke("import", "--force", str(archive)).exit_code == 0


def test_delete_asks_first_and_checks_every_tag(calc_dir):
    tag = build_tag(calc_dir / "bentofile.yaml")
    result = invoke("delete", tag, input="n\n")
    assert result.exit_code == 1 and store.get(tag)
    assert_one_line_error(invoke("delete", tag, "Calc:nope", "-y"), 1, "no bundle Calc:nope")
    assert store.get(tag)  # nothing was deleted
    assert invoke("delete", tag, input="y\n").exit_code == 0
    assert store.list_bundles() == []
    assert_one_line_error(invoke("get", "Calc"), 1, "no bundle named 'Calc'")


def test_list_on_an_empty_store():
    result = invoke("list")
    assert result.exit_code == 0 and "No bundles in the store" in result.stdout
    assert json.loads(invoke("list", "-o", "json").stdout) == []


def test_import_refuses_a_hostile_archive_in_one_line(tmp_path, store_home):
    import io
    import tarfile

    file = tmp_path / "evil.tar.gz"
    with tarfile.open(file, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    assert_one_line_error(invoke("import", str(file)), 1, "has a '..' path component")
    assert not (tmp_path.parent / "escape.txt").exists()
    assert list(store_home.rglob("*")) == []


def test_export_to_an_unknown_extension_exits_2(calc_dir, tmp_path):
    tag = build_tag(calc_dir / "bentofile.yaml")
    assert_one_line_error(invoke("export", tag, str(tmp_path / "x.rar")), 2, "unknown archive type")


# --- run and openapi -----------------------------------------------------------------------------


def test_run_gives_the_same_answer_as_python(iris_dir):
    tag = build_tag(iris_dir / "bentofile.yaml")
    svc = bentolite.load(tag)
    result = invoke("run", tag, "predict", "--input", json.dumps(ROWS))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == jsonable(svc.predict(pd.DataFrame(ROWS)))
    result = invoke("run", tag, "predict_clipper", "--input", json.dumps({"input": ROWS[2]}))
    assert json.loads(result.stdout)["output"] == jsonable(svc.predict_clipper([ROWS[2]]))[0]


def test_run_every_kind_of_input(calc_dir, tmp_path):
    tag = build_tag(calc_dir / "bentofile.yaml")
    svc = bentolite.load(tag)

    def run(*args: str):
        result = invoke("run", tag, *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert run("double", "--input", "21") == 42 == svc.call("double", [21])[0]  # a batch of one
    assert run("shout", "--input", '"hey"') == svc.shout("hey") == "HEY!"
    assert run("total", "--input", "[[1, 2], [3, 4.5]]") == jsonable(svc.total([[1, 2], [3, 4.5]]))
    assert run("later", "--input", '{"a": 1}') == {"got": {"a": 1}}
    image = tmp_path / "pixel.png"
    image.write_bytes(b"\x89PNG fake")
    assert run("size", "--input-file", str(image)) == svc.size(image.read_bytes()) == {"bytes": 9}
    text = tmp_path / "note.txt"
    text.write_text("from a file")
    assert run("shout", "--input-file", str(text)) == "FROM A FILE!"
    data = tmp_path / "values.json"
    data.write_text("[1, 2, 3]")
    assert run("total", "--input-file", str(data)) == 6.0


def test_run_errors(calc_dir):
    tag = build_tag(calc_dir / "bentofile.yaml")
    assert_one_line_error(invoke("run", tag, "double"), 2, "give exactly one of --input")
    assert_one_line_error(invoke("run", tag, "nope", "--input", "1"), 2, "has no API 'nope'")
    assert_one_line_error(invoke("run", tag, "dubble", "--input", "1"), 2, "did you mean 'double'?")
    assert_one_line_error(invoke("run", tag, "double", "--input", "{oops"), 2, "not valid JSON")
    assert_one_line_error(invoke("run", tag, "shout", "--input", "3"), 2, "give --input as a JSON string")
    assert_one_line_error(
        invoke("run", tag, "broken", "--input", "1"),
        1,
        "API 'broken' raised ValueError: this API always fails",
    )


def test_openapi_prints_the_document_of_a_bundle(calc_dir):
    from bentolite.server.openapi import openapi_spec

    tag = build_tag(calc_dir / "bentofile.yaml")
    result = invoke("openapi", tag)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == json.loads(json.dumps(openapi_spec(bentolite.load(tag, load_artifacts=False))))
    assert {"/double", "/shout", "/size"} <= set(document["paths"])
    assert yaml.safe_load(invoke("openapi", tag, "-o", "yaml").stdout) == document


# --- the real command ----------------------------------------------------------------------------


def bentolite_command() -> list[str]:
    script = Path(sys.executable).parent / "bentolite"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from bentolite.cli import main; main()"]


def test_the_installed_command(calc_dir, store_home):
    env = {**os.environ, "BENTOLITE_HOME": str(store_home)}
    (calc_dir / "bentofile.yaml").write_text(
        textwrap.dedent(
            """\
            service: "calc_service.py:Calc"
            artifacts:
              config: config.json
            pyhton:
              packages: [numpy]
            """
        )
    )
    bad = subprocess.run(
        [*bentolite_command(), "build"], cwd=calc_dir, env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr == "error: bentofile.yaml:4: unknown key 'pyhton'; did you mean 'python'?\n"
    assert "Traceback" not in bad.stdout + bad.stderr

    version = subprocess.run([*bentolite_command(), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and bentolite.__version__ in version.stdout


def test_builds_racing_for_one_version_leave_one_bundle(calc_dir, store_home):
    """Real processes, released together: one wins, every other says the version exists."""
    env = {**os.environ, "BENTOLITE_HOME": str(store_home)}
    go = calc_dir / "go"
    wait_then_build = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "from bentolite.cli import main\n"
        "sys.argv = ['bentolite', 'build', '--version', 'v1']\n"
        "main()\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", wait_then_build],
            cwd=calc_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        import time

        time.sleep(1.5)  # every racer has imported bentolite and waits
        go.touch()
        outcomes = [(p.wait(timeout=120), *p.communicate()) for p in racers]
    finally:
        for p in racers:
            p.kill()
    winners = [o for o in outcomes if o[0] == 0]
    losers = [o for o in outcomes if o[0] != 0]
    assert len(winners) == 1, outcomes
    for code, _, stderr in losers:
        assert code == 2, stderr
        assert stderr.startswith("error: Calc:v1 already exists") and stderr.count("\n") == 1, stderr
    assert [b.tag for b in store.list_bundles()] == ["Calc:v1"]
    assert [p.name for p in (store_home / "bundles" / "Calc").iterdir()] == ["v1"]


def test_delete_of_a_bundle_being_served_warns_and_asks(store_home, tmp_path):
    """A real `bentolite serve` of the bundle; delete warns naming the server and asks, -y only
    warns, and once the server is gone nothing is said."""
    from live_server import Server
    from sample_services import Greeter

    Greeter().pack("greeting", "Hi").save(version="v1")
    Greeter().pack("greeting", "Hi").save(version="v2")
    server = Server("Greeter:v1", home=store_home, log=tmp_path / "serve.log")
    try:
        assert store.servers_of(store.get("Greeter:v1").path) == [server.process.pid]
        assert store.servers_of(store.get("Greeter:v2").path) == []
        refused = invoke("delete", "Greeter:v1", input="n\n")
        assert refused.exit_code == 1
        assert f"warning: Greeter:v1 is being served (process {server.process.pid})" in refused.stderr
        assert "Delete Greeter:v1 anyway?" in refused.stderr
        assert store.get("Greeter:v1").version == "v1"
        quiet = invoke("delete", "Greeter:v2", input="y\n")
        assert quiet.exit_code == 0 and "warning" not in quiet.stderr and "anyway" not in quiet.stderr
        forced = invoke("delete", "-y", "Greeter:v1")
        assert forced.exit_code == 0 and "is being served" in forced.stderr
        assert [b.tag for b in store.list_bundles()] == []
    finally:
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it drained on
    # A marker outlives a server killed by a signal; it names a dead process, so it is ignored
    # and removed when read.
    assert store.servers_of(store_home / "bundles" / "Greeter" / "v1") == []
    assert list((store_home / "serving").iterdir()) == []


def test_build_on_a_terminal_shows_each_step_and_artifact_live(calc_dir, store_home):
    """`bentolite build` in a real pseudo-terminal: a live status per step and per artifact it
    loads; the tag and path still end the output."""
    import pty
    import select

    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "BENTOLITE_HOME": str(store_home), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [*bentolite_command(), "build", "--version", "tty"],
        cwd=calc_dir,
        env=env,
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
    )
    os.close(child_fd)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([main_fd], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main_fd)
        assert process.wait(timeout=60) == 0
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # colours and cursor moves
    assert "\x1b[" in raw  # it was drawn as on a terminal, not printed as plain lines
    for line in ("Collecting sources", "Packing artifacts", "Loading artifact config (config.json, 13 B)"):
        assert f"{line}..." in screen, screen  # the spinner's status while the step runs
        assert f"✓ {line}" in screen, screen  # and its tick once done
    assert "Built Calc:tty" in screen and str(store_home / "bundles" / "Calc" / "tty") in screen


def test_save_and_build_log_what_they_made_at_info(calc_dir, caplog):
    import logging

    from sample_services import Greeter

    from bentolite.builder import build

    with caplog.at_level(logging.INFO, logger="bentolite"):
        saved = Greeter().pack("greeting", "Hi").save(version="v1")
        built = build(calc_dir / "bentofile.yaml", version="v2")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"Saved bundle Greeter:v1 to {saved}" in messages
    assert f"Saved bundle Calc:v2 to {built}" in messages
    assert f"Built bundle Calc:v2 from {calc_dir / 'bentofile.yaml'}" in messages
