"""Building bundles from bentofile.yaml (bentolite/builder.py)."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from source_tree import write

import bentolite
from bentolite import store
from bentolite.builder import STEPS, build
from bentolite.exceptions import ArtifactError, BuildError, ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

GREETER = '''
from bentolite import Service, api, artifacts, env
from bentolite.adapters import JsonInput
from bentolite.artifacts import TextArtifact

from helpers import punctuation


@env(pip_packages=["attrs"], system_packages=["curl"])
@artifacts([TextArtifact("greeting")])
class Greeter(Service):
    """Greets people."""

    @api(input=JsonInput())
    def greet(self, name):
        return f"{self.artifacts.greeting}, {name}{punctuation()}"


packed = Greeter().pack("greeting", "Hi")
'''


@pytest.fixture
def greeter_dir(tmp_path: Path) -> Path:
    return write(
        tmp_path / "greeter",
        {
            "greeter_service.py": GREETER,
            "helpers.py": "def punctuation():\n    return '!'\n",
            "greeting.txt": "Hello",
            "bentofile.yaml": """
                service: "greeter_service.py:Greeter"
                artifacts:
                  greeting: greeting.txt
            """,
        },
    )


def meta_of(path: Path) -> dict:
    return yaml.safe_load((path / "bentolite.yaml").read_text())


def test_build_the_iris_example_with_its_training_script(tmp_path, store_home):
    build_dir = shutil.copytree(EXAMPLES / "iris_classifier", tmp_path / "iris")
    subprocess.run(
        [sys.executable, "train.py", "--export", "model.pkl"], cwd=build_dir, check=True, capture_output=True
    )
    path = build(build_dir / "bentofile.yaml")
    assert path.parent == store_home / "bundles" / "IrisClassifier"
    assert sorted(p.name for p in (path / "src").iterdir()) == ["iris_classifier.py"]  # train.py excluded
    assert (path / "artifacts" / "model.pkl").is_file()
    meta = meta_of(path)
    assert meta["labels"] == {"project": "iris", "framework": "scikit-learn"}
    assert meta["description"].startswith("Iris species")
    svc = bentolite.load(f"IrisClassifier:{path.name}")
    rows = [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.8, 2.2]]
    assert svc.predict(pd.DataFrame(rows)).tolist() == [0, 2]


def test_build_the_text_length_example(tmp_path):
    build_dir = shutil.copytree(EXAMPLES / "text_length", tmp_path / "text_length")
    path = build(build_dir / "bentofile.yaml")
    assert sorted(p.name for p in (path / "src").iterdir()) == ["text_length.py"]
    svc = bentolite.load(path)
    assert svc.length_of_text("one two three") == {"unit": "words", "length": 3}
    assert svc.length(["a b", "c"]) == [2, 1]


def test_artifact_files_are_packed_and_sources_collected(greeter_dir):
    path = build(greeter_dir / "bentofile.yaml")
    assert sorted(p.name for p in (path / "src").iterdir()) == [
        "bentofile.yaml",
        "greeter_service.py",
        "helpers.py",
    ]  # greeting.txt went to artifacts/, not src/
    assert (path / "artifacts" / "greeting.txt").read_text() == "Hello"
    svc = bentolite.load(path)
    assert svc.greet("Ann") == "Hello, Ann!"
    assert svc.name == "Greeter" and svc.version == path.name


def test_name_version_labels_and_description_from_bentofile_and_arguments(greeter_dir):
    (greeter_dir / "bentofile.yaml").write_text(
        textwrap.dedent(
            """
            service: "greeter_service.py:Greeter"
            name: hello-service
            version: "2.0"
            labels: {team: ml, stage: dev}
            description: Says hello.
            artifacts: {greeting: greeting.txt}
            """
        )
    )
    path = build(greeter_dir / "bentofile.yaml", labels={"stage": "prod"})
    assert path == store.bundles_root() / "hello-service" / "2.0"
    meta = meta_of(path)
    assert meta["labels"] == {"team": "ml", "stage": "prod"}
    assert meta["description"] == "Says hello."
    other = build(greeter_dir / "bentofile.yaml", version="2.1")
    assert other.name == "2.1"
    assert bentolite.load("hello-service:2.1").name == "hello-service"


def test_a_packed_instance_needs_no_artifact_files(greeter_dir):
    (greeter_dir / "bentofile.yaml").write_text('service: "greeter_service.py:packed"\n')
    assert bentolite.load(build(greeter_dir / "bentofile.yaml")).greet("Bo") == "Hi, Bo!"


def test_python_and_docker_settings_reach_the_env_record(greeter_dir):
    from importlib.metadata import version

    import attrs as attrs_package

    write(
        greeter_dir,
        {
            "requirements.txt": "cloudpickle\n",
            "setup.sh": "echo set up\n",
            "bentofile.yaml": """
                service: "greeter_service.py:Greeter"
                python:
                  packages: [click, "pyyaml>=5"]
                  requirements_txt: requirements.txt
                  index_url: https://pypi.example.com/simple
                  extra_index_url: [https://extra.example.com/simple]
                docker:
                  base_image: python:3.11-bookworm
                  python_version: "3.11"
                  system_packages: [libgomp1]
                  env: {OMP_NUM_THREADS: "1"}
                  setup_script: setup.sh
                artifacts: {greeting: greeting.txt}
            """,
        },
    )
    path = build(greeter_dir / "bentofile.yaml")
    env = meta_of(path)["env"]
    assert env["pip_packages"] == ["attrs", "click", "pyyaml>=5"]  # @env first, then the bentofile
    assert env["system_packages"] == ["curl", "libgomp1"]
    assert env["docker_base_image"] == "python:3.11-bookworm"
    assert env["python_version"] == "3.11"
    assert env["docker_env"] == {"OMP_NUM_THREADS": "1"}
    assert env["pip_index_url"] == "https://pypi.example.com/simple"
    assert env["pip_extra_index_urls"] == ["https://extra.example.com/simple"]
    assert (path / env["setup_sh"]).read_text() == "echo set up\n"
    lines = (path / "env/requirements.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")][:2] == [
        "--index-url https://pypi.example.com/simple",
        "--extra-index-url https://extra.example.com/simple",
    ]
    assert f"attrs=={attrs_package.__version__}" in lines
    assert env["requirements"][:2] == [f"attrs=={attrs_package.__version__}", f"click=={version('click')}"]
    assert env["requirements"][2] == f"pyyaml=={version('pyyaml')}"  # >=5 holds for what is installed
    assert any(line.startswith("cloudpickle==") for line in lines)
    assert "FROM ${BASE_IMAGE}" in (path / "Dockerfile").read_text()


def test_lock_false_keeps_packages_unpinned(greeter_dir):
    (greeter_dir / "bentofile.yaml").write_text(
        'service: "greeter_service.py:packed"\npython:\n  packages: [click]\n  lock: false\n'
    )
    path = build(greeter_dir / "bentofile.yaml")
    assert (path / "env/requirements.txt").read_text() == "attrs\nclick\n"


def test_progress_reports_each_step_in_order(greeter_dir):
    steps: list[str] = []
    build(greeter_dir / "bentofile.yaml", progress=steps.append)
    assert steps == [*STEPS[:2], "Loading artifact greeting (greeting.txt, 5 B)", *STEPS[2:]]


def test_module_in_a_sub_folder(tmp_path):
    build_dir = write(
        tmp_path / "project",
        {
            "src/app/service.py": """
                from bentolite import Service, api
                from bentolite.adapters import JsonInput
                from src.app.rules import double

                class Doubler(Service):
                    @api(input=JsonInput())
                    def run(self, x):
                        return double(x)
            """,
            "src/app/rules.py": "def double(x):\n    return 2 * x\n",
            "bentofile.yaml": 'service: "src/app/service.py:Doubler"\ninclude: ["src/"]\n',
        },
    )
    path = build(build_dir / "bentofile.yaml")
    assert (path / "src/src/app/rules.py").is_file()
    assert bentolite.load(path).run(21) == 42


def test_imports_are_undone_after_a_build(greeter_dir, monkeypatch):
    # A different module of the same name imported before the build is put back afterwards.
    elsewhere = write(greeter_dir.parent / "elsewhere", {"helpers.py": "ORIGIN = 'elsewhere'\n"})
    monkeypatch.syspath_prepend(str(elsewhere))
    monkeypatch.delitem(sys.modules, "helpers", raising=False)  # loaded bundles may have left one
    import helpers

    try:
        path_before = list(sys.path)
        path = build(greeter_dir / "bentofile.yaml")  # imports this directory's helpers.py
        assert (path / "src/helpers.py").read_text() == (greeter_dir / "helpers.py").read_text()
        assert sys.path == path_before
        assert "greeter_service" not in sys.modules
        assert sys.modules["helpers"] is helpers and helpers.ORIGIN == "elsewhere"
    finally:
        sys.modules.pop("helpers", None)


def test_a_rebuild_imports_the_edited_module(greeter_dir):
    first = build(greeter_dir / "bentofile.yaml")
    service = greeter_dir / "greeter_service.py"
    service.write_text(
        service.read_text().replace('f"{self.artifacts.greeting}', 'f"{self.artifacts.greeting}!')
    )
    second = build(greeter_dir / "bentofile.yaml")
    assert bentolite.load(first).greet("x") == "Hello, x!"
    assert bentolite.load(second).greet("x") == "Hello!, x!"


def test_build_time_errors_name_the_key(greeter_dir):
    bentofile = greeter_dir / "bentofile.yaml"
    bentofile.write_text('service: "greeter_service.py:Greeter"\nartifacts:\n  greting: greeting.txt\n')
    with pytest.raises(ConfigError, match=r":3: artifacts.greting: .*did you mean 'greeting'\?"):
        build(bentofile)
    bentofile.write_text('service: "greeter_service.py:Greter"\n')
    with pytest.raises(ConfigError, match=r":1: service: .*no attribute 'Greter'; did you mean 'Greeter'\?"):
        build(bentofile)
    bentofile.write_text('service: "greeter_service.py:punctuation"\n')
    with pytest.raises(ConfigError, match="not a bentolite.Service"):
        build(bentofile)
    bentofile.write_text('service: "greeter_service.py:Greeter"\n')
    with pytest.raises(ConfigError, match=r"needs artifact\(s\) greeting"):
        build(bentofile)
    bentofile.write_text('service: "no_such_pkg.service:Svc"\n')
    with pytest.raises(ConfigError, match="no module 'no_such_pkg.service'"):
        build(bentofile)


def test_a_service_module_named_after_a_standard_library_module_is_refused(greeter_dir):
    shutil.copy(greeter_dir / "greeter_service.py", greeter_dir / "json.py")
    bentofile = greeter_dir / "bentofile.yaml"
    bentofile.write_text('service: "json.py:packed"\n')
    with pytest.raises(ConfigError, match=r":1: service: the module 'json' would hide the module"):
        build(bentofile)


def test_errors_in_user_code_are_build_errors(greeter_dir):
    (greeter_dir / "helpers.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(BuildError, match="importing greeter_service failed: No module named"):
        build(greeter_dir / "bentofile.yaml")


def test_a_failed_build_leaves_the_store_untouched(greeter_dir, store_home):
    (greeter_dir / "model.pkl").write_bytes(b"not a pickle")
    (greeter_dir / "bentofile.yaml").write_text(
        'service: "greeter_service.py:Greeter"\nartifacts:\n  greeting: missing.txt\n'
    )
    with pytest.raises(ConfigError, match="does not exist"):
        build(greeter_dir / "bentofile.yaml")
    bentofile = greeter_dir / "bentofile.yaml"
    bentofile.write_text('service: "greeter_service.py:packed"\nversion: v1\n')
    build(bentofile)
    before = sorted(p.relative_to(store_home) for p in store_home.rglob("*"))
    with pytest.raises(Exception, match="already exists"):
        build(bentofile)
    assert sorted(p.relative_to(store_home) for p in store_home.rglob("*")) == before


def test_unloadable_artifact_file(tmp_path, iris_model):
    build_dir = shutil.copytree(EXAMPLES / "iris_classifier", tmp_path / "iris")
    (build_dir / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ArtifactError, match=r"bentofile.yaml:\d+: artifacts.model: cannot load model.pkl"):
        build(build_dir / "bentofile.yaml")
    assert store.list_bundles() == []
    (build_dir / "model.pkl").write_bytes(pickle.dumps(iris_model[0]))
    assert build(build_dir / "bentofile.yaml").is_dir()


def test_bentolite_build_is_the_function(greeter_dir):
    import bentolite.builder  # noqa: F401 - importing the module must not hide the function

    assert bentolite.build(greeter_dir / "bentofile.yaml", version="called").name == "called"


def test_load_service_gives_a_ready_service(greeter_dir, monkeypatch):
    from bentolite.bentofile import BuildConfig
    from bentolite.builder import load_service

    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("greeter_service", "helpers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    (greeter_dir / "bentofile.yaml").write_text(
        'service: "greeter_service.py:Greeter"\nname: Hi\nartifacts: {greeting: greeting.txt}\n'
    )
    svc = load_service(BuildConfig.from_file(greeter_dir / "bentofile.yaml"), greeter_dir)
    assert svc.name == "Hi" and svc.greet("Al") == "Hello, Al!"
    sys.modules.pop("greeter_service", None)
    sys.modules.pop("helpers", None)


# --- which files: the build context (details in test_build_context.py) ---------------------------


def test_a_build_honours_bentoignore_and_negated_excludes(greeter_dir):
    write(greeter_dir, {"data/a.csv": "", "data/keep.csv": "", "local.cfg": "", ".bentoignore": "*.cfg\n"})
    text = (greeter_dir / "bentofile.yaml").read_text()
    (greeter_dir / "bentofile.yaml").write_text(text + 'exclude: ["*.csv", "!keep.csv"]\n')
    src = build(greeter_dir / "bentofile.yaml") / "src"
    assert (src / "data/keep.csv").is_file()
    assert not (src / "data/a.csv").exists() and not (src / "local.cfg").exists()


def test_a_build_with_a_link_to_a_secret_fails_in_one_line_exit_2(greeter_dir, tmp_path):
    from cli_runner import CliRunner

    from bentolite.cli.main import cli

    secret = write(tmp_path / "home_dir", {".aws/credentials": "aws_secret_access_key = hunter2\n"})
    (greeter_dir / "creds.txt").symlink_to(secret / ".aws/credentials")
    result = CliRunner().invoke(cli, ["build", "-f", str(greeter_dir / "bentofile.yaml")])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "creds.txt in " in result.stderr, result.stderr
    assert "allow_external_symlinks: true" in result.stderr and store.list_bundles() == []
    bentofile = greeter_dir / "bentofile.yaml"
    bentofile.write_text(bentofile.read_text() + "allow_external_symlinks: true\n")
    src = build(bentofile) / "src"
    assert not (src / "creds.txt").is_symlink() and "hunter2" in (src / "creds.txt").read_text()


def test_a_service_package_in_the_build_directory_follows_the_bentofiles_choice(tmp_path):
    """The build's include/exclude decide for the whole package: an excluded link to a secret and
    an excluded file stay out, the service's module and its ``__init__.py`` files go in."""
    secret = write(tmp_path / "home_dir", {".aws/credentials": "aws_secret_access_key = hunter2\n"})
    build_dir = write(
        tmp_path / "project",
        {
            "built_pkg_choice/__init__.py": "",
            "built_pkg_choice/api/__init__.py": "",
            "built_pkg_choice/api/svc.py": (
                "from bentolite import Service, api\n"
                "from bentolite.adapters import JsonInput\n\n\n"
                "class Svc(Service):\n"
                "    @api(input=JsonInput())\n"
                "    def twice(self, x):\n"
                "        return 2 * x\n"
            ),
            "built_pkg_choice/notes.txt": "kept\n",
            "built_pkg_choice/local.cfg": "token = 123\n",
            "bentofile.yaml": """
                service: "built_pkg_choice.api.svc:Svc"
                exclude: ["creds.txt", "*.cfg"]
            """,
        },
    )
    (build_dir / "built_pkg_choice" / "creds.txt").symlink_to(secret / ".aws/credentials")
    try:
        path = build(build_dir / "bentofile.yaml")
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "built_pkg_choice"]:
            del sys.modules[name]
    src = path / "src" / "built_pkg_choice"
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()) == [
        "__init__.py",
        "api/__init__.py",
        "api/svc.py",
        "notes.txt",
    ]
    assert bentolite.load(path).twice(21) == 42


# --- artifact files copied as they are ------------------------------------------------------------

COPIED = '''
from bentolite import Service, api, artifacts
from bentolite.adapters import JsonInput
from bentolite.artifacts import PickleArtifact

LOADS = []


class Counting(PickleArtifact):
    """A pickle whose loads are counted, to tell a copy from a load."""

    def load_file(self, path):
        LOADS.append(str(path))
        return super().load_file(path)


@artifacts([Counting("model"), PickleArtifact("table")])
class Scorer(Service):
    @api(input=JsonInput())
    def score(self, x):
        return self.artifacts.model["w"] * x + len(self.artifacts.table)
'''


@pytest.fixture
def copied_dir(tmp_path: Path) -> Path:
    build_dir = write(tmp_path / "scorer", {"scorer.py": COPIED})
    (build_dir / "model.pkl").write_bytes(pickle.dumps({"w": 3}, protocol=4))
    (build_dir / "table.pkl").write_bytes(pickle.dumps([1, 2], protocol=4))
    (build_dir / "bentofile.yaml").write_text(
        "service: scorer.py:Scorer\nartifacts:\n  model:\n    file: model.pkl\n    copy: true\n"
        "  table: table.pkl\n"
    )
    return build_dir


def test_an_artifact_marked_copy_is_copied_byte_for_byte_without_loading(copied_dir):
    steps: list[str] = []
    path = build(copied_dir / "bentofile.yaml", progress=steps.append)
    assert "Copying artifact model (model.pkl, " in " ".join(steps)
    assert "Loading artifact table (table.pkl, " in " ".join(steps)
    assert (path / "artifacts/model.pkl").read_bytes() == (copied_dir / "model.pkl").read_bytes()
    # table was loaded and written again by cloudpickle; model is the user's own bytes
    records = {a["name"]: a for a in meta_of(path)["artifacts"]}
    for name in ("model", "table"):
        digest = hashlib.sha256((path / "artifacts" / records[name]["file"]).read_bytes()).hexdigest()
        assert records[name]["sha256"] == digest
    # the build never loaded it (the module is forgotten after the build; load the bundle anew)
    served = bentolite.load(path)
    assert served.score(2) == 8
    assert len(sys.modules[type(served).__module__].LOADS) == 1  # loaded once, when the bundle loaded


def test_a_build_copying_an_artifact_needs_no_library_to_unpickle_it(tmp_path):
    """The file names a class the building process cannot import; a copy does not care."""
    build_dir = write(tmp_path / "opaque", {"scorer.py": COPIED})
    # a pickle of a class from a module that is not installed where the build runs
    (build_dir / "model.pkl").write_bytes(b"\x80\x02cnot_installed\nModel\n)\x81.")
    (build_dir / "table.pkl").write_bytes(pickle.dumps([1], protocol=4))
    bentofile = build_dir / "bentofile.yaml"
    bentofile.write_text("service: scorer.py:Scorer\nartifacts:\n  model: model.pkl\n  table: table.pkl\n")
    with pytest.raises(ArtifactError, match="No module named 'not_installed'"):
        build(bentofile)
    bentofile.write_text(
        "service: scorer.py:Scorer\nartifacts:\n  model: {file: model.pkl, copy: true}\n  table: table.pkl\n"
    )
    path = build(bentofile)
    assert (path / "artifacts/model.pkl").read_bytes() == (build_dir / "model.pkl").read_bytes()
    with pytest.raises(ArtifactError, match="No module named 'not_installed'"):
        bentolite.load(path)  # at serve time the library must be there, as for any pickle


def test_a_changed_artifact_file_is_refused_at_load(copied_dir):
    path = build(copied_dir / "bentofile.yaml")
    assert bentolite.load(path).score(1) == 5
    model = path / "artifacts/model.pkl"
    model.write_bytes(pickle.dumps({"w": 1000}, protocol=4))  # a tampered or damaged copy
    with pytest.raises(ArtifactError, match=r"artifact 'model': .*model.pkl does not match the SHA-256"):
        bentolite.load(path)
    assert bentolite.load(path, load_artifacts=False).name == "Scorer"
