"""Reading, validating and rendering bentofile.yaml (bentolite/bentofile.py)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bentolite.bentofile import (
    _DOCKER_SCHEMA,
    _PYTHON_SCHEMA,
    _SCHEMA,
    _SERVE_SCHEMA,
    BuildConfig,
    DockerOptions,
    PythonOptions,
    ServeOptions,
)
from bentolite.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "bentofile.example.yaml"


def parse(text: str) -> BuildConfig:
    return BuildConfig.from_yaml(textwrap.dedent(text), source="bf.yaml")


def test_minimal_file_gets_defaults():
    config = parse('service: "svc.py:MyService"\n')
    assert config.service == "svc.py:MyService"
    assert config.service_module == "svc.py" and config.service_attr == "MyService"
    assert config.module_name() == "svc"
    assert config.include == ("*",) and config.exclude == ()
    assert config.python == PythonOptions() and config.python.lock is True
    assert config.docker == DockerOptions()
    assert config.name is None and config.version is None and config.labels == {}


def test_every_key_is_read():
    config = BuildConfig.from_yaml(EXAMPLE.read_text())
    assert config.name == "IrisClassifier" and config.version == "1.0.0"
    assert config.labels == {"owner": "ml-team", "project": "iris"}
    assert config.description.startswith("Predicts the iris species")
    assert config.include == ("*.py", "data/labels.json")
    assert config.exclude == ("train.py", "tests/", "scratch_*.py", "!scratch_keep.py")
    assert config.allow_external_symlinks is False
    assert config.python == PythonOptions(
        packages=("scikit-learn", "pandas>=1.3"),
        requirements_txt="requirements.txt",
        lock=True,
        index_url="https://pypi.org/simple",
        extra_index_url=("https://download.pytorch.org/whl/cpu",),
    )
    assert config.docker == DockerOptions(
        base_image="python:3.11-slim",
        python_version="3.11",
        system_packages=("libgomp1",),
        env={"OMP_NUM_THREADS": "1"},
        setup_script="setup.sh",
    )
    assert config.serve == ServeOptions(cors_origins=("https://app.example.com",))
    assert config.artifacts == {"model": "model.pkl", "embeddings": "embeddings.pkl"}
    assert config.copy_artifacts == ("embeddings",)


def test_the_example_file_documents_every_key():
    text = EXAMPLE.read_text()
    for key in _SCHEMA:
        assert f"\n{key}:" in text, key
    sections = (("python", _PYTHON_SCHEMA), ("docker", _DOCKER_SCHEMA), ("serve", _SERVE_SCHEMA))
    for section, schema in sections:
        for key in schema:
            if key == "lock_packages":  # BentoML's name for lock, documented beside it
                assert "`lock_packages`" in text
                continue
            assert f"\n  {key}:" in text, f"{section}.{key}"


def test_render_round_trips():
    for config in (
        BuildConfig.from_yaml(EXAMPLE.read_text()),
        parse('service: "pkg.svc:Svc"\npython:\n  lock: false\n'),
        parse('service: "a.py:B"\n'),
        parse('service: "a.py:B"\nartifacts:\n  m: {file: m.pkl, copy: true}\n  n: {file: n.pkl}\n'),
    ):
        assert BuildConfig.from_yaml(config.to_yaml()) == config


def test_render_leaves_out_defaults():
    config = parse('service: "a.py:B"\ninclude: ["*"]\npython:\n  lock: true\n')
    assert config.to_dict() == {"service": "a.py:B"}


def test_text_values_are_read_as_written():
    config = parse(
        """
        service: "a.py:B"
        version: 1.10
        labels:
          stage: 2
          flag: yes
        docker:
          python_version: 3.10
        """
    )
    assert config.version == "1.10"
    assert config.labels == {"stage": "2", "flag": "yes"}
    assert config.docker.python_version == "3.10"
    assert "'1.10'" in config.to_yaml()  # quoted, so it reads back as text


def test_empty_values_mean_defaults():
    config = parse('service: "a.py:B"\nlabels:\npython:\ndocker:\n  env:\n')
    assert config.labels == {} and config.python == PythonOptions()


def test_dotted_module_and_attribute():
    config = parse('service: "my_pkg.service:holder.svc"\n')
    assert config.module_name() == "my_pkg.service"
    assert config.service_attr == "holder.svc"
    assert parse('service: "src/app/service.py:Svc"\n').module_name() == "src.app.service"


def test_lines_are_remembered_for_later_errors():
    config = parse(
        """
        service: "a.py:B"
        artifacts:
          model: model.pkl
        """
    )
    assert config.where("artifacts.model") == "bf.yaml:4"
    assert config.where("artifacts.other") == "bf.yaml:3"  # falls back to the parent key
    assert str(config.error("artifacts.model", "bad")) == "bf.yaml:4: artifacts.model: bad"


def test_direct_construction_validates_too():
    with pytest.raises(ConfigError, match="service"):
        BuildConfig(service="no colon")
    with pytest.raises(ConfigError, match="system package"):
        DockerOptions(system_packages=["ok", "rm -rf /"])


# One case per rule: (bentofile text, line, message fragment).
INVALID = {
    "unknown key": ("service: a.py:B\nlables: {}\n", 2, "unknown key 'lables'; did you mean 'labels'?"),
    "unknown nested key": (
        "service: a.py:B\npython:\n  pakages: [x]\n",
        3,
        "unknown key 'python.pakages'; did you mean 'python.packages'?",
    ),
    "unknown key, nothing close": ("service: a.py:B\nfrobnicate: 1\n", 2, "unknown key 'frobnicate'"),
    "list expected": (
        "service: a.py:B\ninclude: '*.py'\n",
        2,
        "include: expected a list of strings, got '*.py'",
    ),
    "mapping expected": (
        "service: a.py:B\nlabels: [a, b]\n",
        2,
        "labels: expected a mapping of names to strings",
    ),
    "section must be a mapping": ("service: a.py:B\npython: numpy\n", 2, "python: expected a mapping"),
    "bool expected": ("service: a.py:B\npython:\n  lock: 'no'\n", 3, "python.lock: expected true or false"),
    "string expected": ("service: {a: b}\n", 1, "service: expected a string, got a mapping"),
    "list item must be a string": (
        "service: a.py:B\nexclude:\n  - [x]\n",
        3,
        "exclude[0]: expected a string",
    ),
    "label value missing": ("service: a.py:B\nlabels:\n  team:\n", 3, "labels.team: expected a string"),
    "service missing": ("name: x\n", 1, "service: missing"),
    "service without attribute": ("service: a.py\n", 1, "expected 'path/to/module.py:attr'"),
    "service file outside": ("service: ../a.py:B\n", 1, "must stay inside the build directory"),
    "service stem not an identifier": ("service: my-svc.py:B\n", 1, "must be a Python identifier"),
    "bad name": ("service: a.py:B\nname: my model\n", 2, "name: 'my model' is not a valid bundle name"),
    "bad version": ("service: a.py:B\nversion: v/1\n", 2, "version: 'v/1' is not a valid version"),
    "bad package": (
        "service: a.py:B\npython:\n  packages:\n    - ok\n    - 'x y!'\n",
        5,
        "python.packages[1]",
    ),
    "bad index url": (
        "service: a.py:B\npython:\n  index_url: pypi.org\n",
        3,
        "python.index_url: 'pypi.org' is not",
    ),
    "bad python version": ("service: a.py:B\ndocker:\n  python_version: '2.7'\n", 3, "docker.python_version"),
    "bad env var": ("service: a.py:B\ndocker:\n  env:\n    1X: a\n", 4, "docker.env.1X"),
    "bad system package": ("service: a.py:B\ndocker:\n  system_packages: ['a;b']\n", 3, "system_packages[0]"),
    "absolute pattern": (
        "service: a.py:B\nexclude:\n  - /etc\n",
        3,
        "exclude[0]: pattern '/etc' must be relative",
    ),
    "bad pattern": ("service: a.py:B\nexclude:\n  - '!'\n", 3, "exclude[0]: a pattern cannot be"),
    "bad range": ("service: a.py:B\nexclude:\n  - '[z-a].py'\n", 3, "'[z-a].py' is not a valid pattern"),
    "bad artifact name": ("service: a.py:B\nartifacts:\n  my-model: m.pkl\n", 3, "artifacts.my-model"),
    "duplicate key": ("service: a.py:B\nname: x\nname: y\n", 3, "name: appears twice (first on line 2)"),
    "not yaml": ("service: a.py:B\nname: [x\n", "3:1", "not valid YAML"),
    "bad indentation": ("service: a.py:B\n  labels: x\n", "2:9", "mapping values are not allowed here"),
    "unclosed quote": ('service: a.py:B\nname: "x\n', "3:1", "while scanning a quoted scalar"),
    "tab indentation": ("service: a.py:B\nlabels:\n\ta: b\n", "3:1", "found character '\\t'"),
    "deep nesting": ("service: " + "[" * 5000 + "]" * 5000 + "\n", "1:73", "nested more than 64 levels"),
    "deep block nesting": (
        "service: a.py:B\n" + "".join(" " * i + "k:\n" for i in range(3000)),
        "65:64",
        "nested more than 64 levels",
    ),
    "alias": ("service: a.py:B\nlabels: &l {a: b}\ndescription: *l\n", "3:14", "aliases (*name) are not"),
    "empty file": ("", 1, "the file is empty"),
    "not a mapping": ("- a\n- b\n", 1, "expected a mapping of keys for the file"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_files_name_file_line_and_key(case):
    text, line, fragment = INVALID[case]
    with pytest.raises(ConfigError) as info:
        BuildConfig.from_yaml(text, source="bf.yaml")
    message = str(info.value)
    assert message.startswith(f"bf.yaml:{line}: "), message
    assert fragment in message, message
    assert "\n" not in message


def test_missing_files_are_reported_with_their_key(tmp_path):
    (tmp_path / "a.py").write_text("")
    file = tmp_path / "bentofile.yaml"
    file.write_text("service: a.py:B\npython:\n  requirements_txt: reqs.txt\n")
    with pytest.raises(ConfigError, match=r"bentofile.yaml:3: python.requirements_txt: file 'reqs.txt' does"):
        BuildConfig.from_file(file)
    file.write_text("service: nope.py:B\n")
    with pytest.raises(ConfigError, match=r"bentofile.yaml:1: service: file 'nope.py' does not exist"):
        BuildConfig.from_file(file)
    with pytest.raises(ConfigError, match="no such file"):
        BuildConfig.from_file(tmp_path / "other.yaml")


BENTOML_ONLY = {
    "envs": ("envs:\n  - name: A\n    value: b\n", 2, "docker.env (NAME: value)"),
    "conda": ("conda:\n  channels: [conda-forge]\n", 2, "python.packages"),
    "models": ("models:\n  - iris_clf:latest\n", 2, "under artifacts:"),
    "python.pip_args": ("python:\n  pip_args: --pre\n", 3, "python.index_url"),
    "docker.distro": ("docker:\n  distro: alpine\n", 3, "docker.base_image"),
    "docker.cuda_version": ("docker:\n  cuda_version: '11.6'\n", 3, "CUDA and Python"),
    "docker.dockerfile_template": ("docker:\n  dockerfile_template: ./t.j2\n", 3, "--output-context DIR"),
}


@pytest.mark.parametrize("key", list(BENTOML_ONLY))
def test_bentoml_keys_get_a_migration_hint_not_a_did_you_mean(key):
    text, line, fragment = BENTOML_ONLY[key]
    with pytest.raises(ConfigError) as info:
        BuildConfig.from_yaml("service: a.py:B\n" + text, source="bf.yaml")
    message = str(info.value)
    assert message.startswith(f"bf.yaml:{line}: {key!r} is a BentoML key that bentolite does not support; ")
    assert fragment in message and "did you mean" not in message and "\n" not in message


def test_docker_env_accepts_bentomls_list_forms():
    listed = BuildConfig.from_yaml(
        "service: a.py:B\ndocker:\n  env:\n    - name: OMP_NUM_THREADS\n      value: '1'\n"
        "    - MODE=fast=yes\n    - EMPTY=\n    - name: NO_VALUE\n"
    )
    mapped = BuildConfig.from_yaml(
        "service: a.py:B\ndocker:\n  env:\n    OMP_NUM_THREADS: '1'\n    MODE: fast=yes\n"
        "    EMPTY: ''\n    NO_VALUE: ''\n"
    )
    assert listed == mapped
    assert listed.docker.env == {"OMP_NUM_THREADS": "1", "MODE": "fast=yes", "EMPTY": "", "NO_VALUE": ""}
    assert BuildConfig.from_yaml(listed.to_yaml()) == listed
    assert listed.lines["docker.env.MODE"] == 6


@pytest.mark.parametrize(
    ("items", "line", "fragment"),
    [
        ("    - JUST_A_NAME\n", 4, "docker.env[0]: expected NAME=value, got 'JUST_A_NAME'"),
        ("    - value: x\n", 4, "docker.env[0]: give the variable's name"),
        ("    - 1X=a\n", 4, "docker.env.1X: an environment variable name"),
        ("    - A=1\n    - name: A\n      value: '2'\n", 5, "docker.env.A: appears twice (first on line 4)"),
        ("    - name: A\n      vaule: '2'\n", 5, "did you mean 'docker.env[0].value'?"),
        ("    - [A, b]\n", 4, "docker.env[0]: expected NAME=value, got a list"),
    ],
)
def test_docker_env_list_errors_name_the_item(items, line, fragment):
    with pytest.raises(ConfigError) as info:
        BuildConfig.from_yaml("service: a.py:B\ndocker:\n  env:\n" + items, source="bf.yaml")
    assert str(info.value).startswith(f"bf.yaml:{line}: ") and fragment in str(info.value), str(info.value)


def test_artifacts_marked_copy():
    config = parse(
        "service: a.py:B\nartifacts:\n  a: a.pkl\n  b:\n    file: b.bin\n    copy: true\n  c: {file: c}\n"
    )
    assert config.artifacts == {"a": "a.pkl", "b": "b.bin", "c": "c"} and config.copy_artifacts == ("b",)
    assert config.lines["artifacts.b.copy"] == 6
    for text, fragment in [
        ("  b:\n    copy: true\n", "bf.yaml:4: artifacts.b: give the file"),
        ("  b: {file: x, copy: maybe}\n", "artifacts.b.copy: expected true or false"),
        ("  b: {fille: x}\n", "unknown key 'artifacts.b.fille'; did you mean 'artifacts.b.file'?"),
        ("  b: [x]\n", "artifacts.b: expected a file path or a mapping with 'file:', got a list"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            BuildConfig.from_yaml("service: a.py:B\nartifacts:\n" + text, source="bf.yaml")
    with pytest.raises(ConfigError, match="'z' is to be copied but names no file"):
        BuildConfig(service="a.py:B", artifacts={"a": "a.pkl"}, copy_artifacts=["z"])
