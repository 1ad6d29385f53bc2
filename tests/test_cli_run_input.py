"""``bentolite run --input`` parses its JSON as strictly as the HTTP server parses a request body
(bentolite/cli/bundles.py through bentolite/adapters/strict_json.py): ``NaN``/``Infinity``
only where the API's adapter allows them, one line and exit 2 for anything else."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from cli_runner import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bentolite.cli.main import cli

SERVICE = """
from bentolite import Service, api
from bentolite.adapters import JsonInput, NdarrayInput, StringInput


class Strictness(Service):
    @api(input=JsonInput())
    def strict(self, value):
        return repr(value)

    @api(input=JsonInput(allow_nan=True))
    def loose(self, value):
        return repr(value)

    @api(input=NdarrayInput(dtype="float64", allow_nan=True))
    def count_nan(self, arr):
        import numpy as np

        return int(np.isnan(arr).sum())

    @api(input=StringInput())
    def shout(self, text):
        return text.upper()
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One saved bundle for the module, by path (each test has its own empty store)."""
    source = tmp_path_factory.mktemp("run_input_src")
    (source / "run_input_service.py").write_text(SERVICE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOLITE_HOME", str(tmp_path_factory.mktemp("run_input_home")))
        patch.syspath_prepend(str(source))
        from run_input_service import Strictness

        path = Path(Strictness().save_to_dir(tmp_path_factory.mktemp("run_input") / "bundle"))
        del sys.modules["run_input_service"]
    return str(path)


def run(bundle: str, api: str, text: str):
    return CliRunner().invoke(cli, ["run", bundle, api, "--input", text])


def one_line_error(result, fragment: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.stdout + result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def has_non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    return False


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES)
def test_nan_and_infinity_reach_only_an_adapter_that_allows_them(bundle, value):
    text = json.dumps(value)  # writes NaN/Infinity/-Infinity for non-finite floats
    parsed = json.loads(text)
    loose = run(bundle, "loose", text)
    assert loose.exit_code == 0, loose.output
    assert json.loads(loose.stdout) == repr(parsed)
    strict = run(bundle, "strict", text)
    if has_non_finite(value):
        message = one_line_error(strict, "--input holds ")
        assert "which is not JSON (RFC 8259)" in message
    else:
        assert strict.exit_code == 0, strict.output
        assert json.loads(strict.stdout) == repr(parsed)


def test_an_array_adapter_with_allow_nan_takes_nan_from_the_command_line(bundle):
    result = run(bundle, "count_nan", "[1.5, NaN, 2, NaN]")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == 2


@pytest.mark.parametrize(
    ("api", "text", "fragment"),
    [
        ("strict", "1e400", "number 1e400 is out of the range of a 64-bit float"),
        ("strict", "[-Infinity]", "--input holds -Infinity"),
        ("strict", "{oops", "--input is not valid JSON (Expecting property name"),
        ("strict", "   ", "--input is empty"),
        ("strict", "[" * 65 + "]" * 65, "--input nests arrays/objects more than 64 deep"),
        ("strict", "[" * 100_000, "--input nests arrays/objects more than 64 deep"),
        ("strict", '"\\ud800"', "--input holds a string with a lone UTF-16 surrogate (\\ud800)"),
        ("strict", '"\udcff"', "--input is not UTF-8"),  # a non-UTF-8 byte in argv
        ("strict", "\ud800", "--input is not valid Unicode text"),
        ("shout", "NaN", "--input holds NaN"),
        ("shout", '"\\udfff tail"', "lone UTF-16 surrogate (\\udfff)"),
        ("shout", "[" * 100_000, "--input nests arrays/objects more than 64 deep"),
        ("shout", "3", "give --input as a JSON string"),
    ],
)
def test_bad_input_is_one_line_exit_2(bundle, api, text, fragment):
    one_line_error(run(bundle, api, text), fragment)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=20))
def test_a_text_api_takes_any_json_string(bundle, text):
    result = run(bundle, "shout", json.dumps(text))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == text.upper()
