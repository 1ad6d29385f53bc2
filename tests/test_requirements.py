"""Requirement lines: parsed with packaging, checked where written, pinned (bentolite/requirements.py)."""

from __future__ import annotations

import logging
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest
from cli_runner import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bentolite import Service, api, env
from bentolite.adapters import JsonInput
from bentolite.cli.main import cli
from bentolite.exceptions import ConfigError
from bentolite.requirements import is_requirement, read_requirements_file, resolve

BAD_LINES = {
    "scikit-learn=1.0": "'=' is not a version operator; write '==' to pin a version",
    "numpy>=": "is not a pip requirement",
    "root:x:0:0:root:/root:/bin/bash": "is not a pip requirement",
    "pandas[": "is not a pip requirement",
}


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_a_bad_line_in_a_requirements_file_names_the_file_and_line(tmp_path: Path, line: str) -> None:
    file = tmp_path / "requirements.txt"
    file.write_text(f"# pinned by hand\nclick\n\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        read_requirements_file(file)
    assert str(caught.value).startswith(f"{file}:4: ")
    assert BAD_LINES[line] in str(caught.value)
    assert not is_requirement(line)


def test_a_file_that_is_not_a_requirements_file_fails_on_its_first_line() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/passwd:1: 'root:"):
        read_requirements_file("/etc/passwd")


def test_options_includes_continuations_and_hashes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("click  # the CLI\n")
    (tmp_path / "requirements.txt").write_text(
        "--extra-index-url https://extra.example.com/simple\n-r base.txt\n"
        "pyyaml==6.0.1 \\\n    --hash=sha256:abc\n"
    )
    lines = read_requirements_file(tmp_path / "requirements.txt")
    assert [line.text for line in lines] == [
        "--extra-index-url https://extra.example.com/simple",
        "click",
        "pyyaml==6.0.1",
    ]
    assert lines[1].where == f"{tmp_path / 'base.txt'}:1"
    (tmp_path / "bad.txt").write_text("click\n-r missing.txt\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: requirements file missing.txt does not exist"):
        read_requirements_file(tmp_path / "bad.txt")
    for option, hint in (("-e .", "editable"), ("-c c.txt", "constraints"), ("--user", "use requirements")):
        (tmp_path / "bad.txt").write_text(f"click\n{option}\n")
        with pytest.raises(ConfigError, match=rf"bad.txt:2: unsupported pip option .*{hint}"):
            read_requirements_file(tmp_path / "bad.txt")


def test_names_are_normalised_and_pinned_markers_kept() -> None:
    sklearn = version("scikit-learn")
    numpy = version("numpy")
    assert resolve(["Scikit_Learn", "scikit-learn>=1.0", 'numpy; python_version >= "3.9"']) == [
        f"scikit-learn=={sklearn}",
        f'numpy=={numpy}; python_version >= "3.9"',
    ]
    # a marker false here: not needed on this Python, kept as written
    assert resolve(['numpy; python_version < "3.0"']) == ['numpy; python_version < "3.0"']
    assert resolve(["Scikit_Learn>=1.0"], lock=False) == ["scikit-learn>=1.0"]


def test_what_cannot_be_pinned_is_a_warning_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bentolite.requirements"):
        assert resolve(["sklearn", "no-such-package-bentolite-test", "numpy<1"]) == [
            "sklearn",
            "no-such-package-bentolite-test",
            "numpy<1",
        ]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "cannot pin 'sklearn'" in messages[0] and "comes from 'scikit-learn'" in messages[0]
    assert "cannot pin 'no-such-package-bentolite-test'" in messages[1]
    assert f"the installed {version('numpy')} is outside <1" in messages[2]


_SEPARATORS = st.sampled_from(["-", "_", "."])


@st.composite
def spellings(draw: st.DrawFn, name: str) -> str:
    """``name`` with random case and any of -, _ and . between its words (PEP 503 equivalents)."""
    words = name.split("-")
    cased = ["".join(c.upper() if draw(st.booleans()) else c for c in w) for w in words]
    return "".join(w + (draw(_SEPARATORS) if i < len(cased) - 1 else "") for i, w in enumerate(cased))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["scikit-learn", "python-dateutil", "typing-extensions", "prometheus-client"]).flatmap(
        lambda name: st.tuples(st.just(name), spellings(name))
    )
)
def test_any_spelling_of_a_name_pins_the_installed_distribution(case: tuple[str, str]) -> None:
    name, spelled = case
    assert resolve([spelled, name]) == [f"{name}=={version(name)}"]


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        st.characters(
            blacklist_categories=["Cs"], blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
        ),
        max_size=30,
    )
)
def test_any_line_is_a_requirement_or_a_one_line_error(
    tmp_path_factory: pytest.TempPathFactory, line: str
) -> None:
    file = tmp_path_factory.mktemp("reqs") / "requirements.txt"
    file.write_text(f"{line}\n", encoding="utf-8")
    try:
        lines = read_requirements_file(file)
    except ConfigError as exc:
        assert str(exc).startswith(f"{file}:1: ") and "\n" not in str(exc)
    else:
        assert len(lines) <= 1


# --- at save() and build -----------------------------------------------------------------------

BENTOFILE_SERVICE = """
from bentolite import Service, api
from bentolite.adapters import JsonInput


class Echo(Service):
    @api(input=JsonInput())
    def echo(self, value):
        return value
"""


def test_build_refuses_a_bad_requirement_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(BENTOFILE_SERVICE)
    (tmp_path / "requirements.txt").write_text("click\nscikit-learn=1.0\n")
    bentofile = tmp_path / "bentofile.yaml"
    bentofile.write_text('service: "echo.py:Echo"\npython:\n  requirements_txt: requirements.txt\n')
    result = CliRunner().invoke(cli, ["build", "-f", str(bentofile)])
    assert result.exit_code == 2, result.output
    assert f"error: {tmp_path / 'requirements.txt'}:2: 'scikit-learn=1.0'" in result.stderr
    assert "Traceback" not in result.stderr

    bentofile.write_text('service: "echo.py:Echo"\npython:\n  packages:\n    - click\n    - "numpy>="\n')
    result = CliRunner().invoke(cli, ["build", "-f", str(bentofile)])
    assert result.exit_code == 2
    assert "bentofile.yaml:5: python.packages[1]: 'numpy>=' is not a pip requirement" in result.stderr

    bentofile.write_text('service: "echo.py:Echo"\npython:\n  requirements_txt: /etc/passwd\n')
    result = CliRunner().invoke(cli, ["build", "-f", str(bentofile)])
    assert result.exit_code == 2
    assert "error: /etc/passwd:1: " in result.stderr
    assert not (tmp_path / "home").exists()


def test_save_refuses_a_requirements_file_that_is_not_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "passwd_service.py"
    module.write_text(
        textwrap.dedent(
            """
            from bentolite import Service, api, env
            from bentolite.adapters import JsonInput


            @env(requirements_txt_file="/etc/passwd")
            class Passwd(Service):
                @api(input=JsonInput())
                def echo(self, value):
                    return value
            """
        )
    )
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = importlib.import_module("passwd_service")
    with pytest.raises(ConfigError, match=r"^/etc/passwd:1: 'root:"):
        loaded.Passwd().save_to_dir(tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
    assert not list(tmp_path.glob(".tmp-*"))


def test_env_decorator_checks_lines_when_it_runs() -> None:
    with pytest.raises(Exception, match="'scikit-learn=1.0' is not a requirement"):

        @env(pip_packages=["scikit-learn=1.0"])
        class Bad(Service):
            @api(input=JsonInput())
            def echo(self, value):
                return value
