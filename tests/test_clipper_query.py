"""Clipper query bodies to ``bentolite serve`` are read as Clipper's query frontend reads them
(bentolite/adapters/clipper_query.py): what the frontend refuses is a 400 with its own
``{"error": "Json error", "cause": ...}``, what it takes gets the right answer. Generated
queries against the adapters, then a real server on loopback."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import Server

from bentolite.adapters import (
    ClipperDoublesInput,
    ClipperFloatsInput,
    ClipperIntsInput,
    ClipperStringsInput,
)
from bentolite.adapters.base import HttpRequest
from bentolite.exceptions import BadInput

SCHEMA = '\n  {\n   "input" := [double] | [int] | [string] | [byte] | [float],\n  }\n'


def clipper_cause(what: str) -> str:
    """What Clipper's query frontend answers in ``cause`` (its json_error_msg)."""
    return f"Error parsing JSON: {what}. Expected JSON schema: {SCHEMA}"


# --- the rules, decided from the literal's text as rapidjson does ----------------------------
def literal_is_real(text: str) -> bool:
    """rapidjson holds a number as a double when written with a fraction or an exponent, or
    when an integer does not fit 64 bits."""
    if any(c in text for c in ".eE"):
        return True
    return not -(2**63) <= int(text) <= 2**64 - 1


def accepted(kind: str, text: str) -> bool:
    if kind == "ints":
        return not literal_is_real(text) and -(2**31) <= int(text) <= 2**31 - 1
    if kind == "floats":
        return literal_is_real(text) and abs(float(text)) <= 3.4028234e38
    return literal_is_real(text)


ADAPTERS = {"doubles": ClipperDoublesInput(), "floats": ClipperFloatsInput(), "ints": ClipperIntsInput()}
LABELS = {"doubles": "double", "floats": "float", "ints": "int"}

integer_literals = st.integers(-(2**70), 2**70).map(str)
real_literals = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**6), 10**6).map(lambda i: f"{i}.0"),
    st.tuples(st.integers(-99, 99), st.integers(-300, 300)).map(lambda t: f"{t[0]}e{t[1]}"),
    st.sampled_from(["1e300", "-1e300", "3.4e38", "3.5e38", "1E5", "0.0", "-0.0"]),
)
literals = st.one_of(integer_literals, real_literals)


def request(body: str) -> HttpRequest:
    return HttpRequest(body.encode(), "application/json")


@settings(deadline=None, max_examples=200)
@given(
    kind=st.sampled_from(sorted(ADAPTERS)),
    texts=st.lists(literals, max_size=6),
    batch=st.booleans(),
)
def test_numbers_are_taken_or_refused_as_clippers_frontend_does(kind, texts, batch):
    array = "[" + ", ".join(texts) + "]"
    body = f'{{"input_batch": [{array}]}}' if batch else f'{{"input": {array}}}'
    refused = [t for t in texts if not accepted(kind, t)]
    adapter = ADAPTERS[kind]
    if refused:
        with pytest.raises(BadInput) as caught:
            adapter.from_http(request(body))
        assert caught.value.http_status == 400 and caught.value.message == "Json error"
        assert caught.value.cause == clipper_cause(
            f"Array input of type Number is not of type {LABELS[kind]}"
        )
        return
    (values,) = adapter.from_http(request(body))
    assert values.tolist() == pytest.approx([float(t) for t in texts], rel=1e-6)
    assert all(math.isfinite(v) for v in values.tolist())


@pytest.mark.parametrize(
    ("adapter", "body", "what"),
    [
        (ClipperDoublesInput(), "[1.0]", "Can only get key-value pair from an object"),
        (ClipperDoublesInput(), '{"x": 1}', "JSON object does not have required keys input or input_batch"),
        (
            ClipperDoublesInput(),
            '{"input": "1.0"}',
            "Type mismatch! JSON key input expected type Arraybut found type String",
        ),
        (
            ClipperDoublesInput(),
            '{"input_batch": {"a": 1}}',
            "Type mismatch! JSON key input_batch expected type Arraybut found type Object",
        ),
        (
            ClipperDoublesInput(),
            '{"input_batch": [[1.0], 2.0]}',
            "Array input of type Number is not of type array",
        ),
        (ClipperDoublesInput(), '{"input": [true]}', "Array input of type True is not of type double"),
        (ClipperDoublesInput(), '{"input": [null]}', "Array input of type Null is not of type double"),
        (
            ClipperDoublesInput(),
            '{"input": [1' + "0" * 400 + "]}",
            "JSON parse error: Number too big to be stored in double",
        ),
        (
            ClipperStringsInput(),
            '{"input": 3}',
            "Type mismatch! JSON key input expected type Stringbut found type Number",
        ),
        (
            ClipperStringsInput(),
            '{"input_batch": ["a", [1]]}',
            "Array input of type Array is not of type string",
        ),
    ],
)
def test_malformed_queries_get_clippers_cause(adapter, body, what):
    with pytest.raises(BadInput) as caught:
        adapter.from_http(request(body))
    assert caught.value.cause == clipper_cause(what)


def test_input_wins_over_input_batch_as_in_clipper():
    (only,) = ClipperDoublesInput().from_http(request('{"input": [1.5], "input_batch": [[2.5], [3.5]]}'))
    assert only.tolist() == [1.5]


def test_allow_integers_loosens_only_the_integer_rule():
    loose = ClipperFloatsInput(allow_integers=True)
    assert loose.options() == {"allow_integers": True} and ClipperFloatsInput().options() == {}
    (values,) = loose.from_http(request('{"input": [6, 3.5, -2]}'))
    assert values.tolist() == [6.0, 3.5, -2.0]
    for body in ('{"input": [1e39]}', '{"input": [' + "9" * 40 + "]}"):
        with pytest.raises(BadInput, match="Json error"):
            loose.from_http(request(body))


# --- a real server ------------------------------------------------------------------------------
SERVICE = textwrap.dedent(
    """
    import math

    import bentolite
    from bentolite.adapters import ClipperDoublesInput, ClipperFloatsInput


    class QueryShapes(bentolite.Service):
        @bentolite.api(input=ClipperDoublesInput())
        def total(self, xs):
            return [float(x.sum()) for x in xs]

        @bentolite.api(input=ClipperFloatsInput())
        def species(self, xs):
            # like a scikit-learn model: non-finite features make it raise
            for x in xs:
                if len(x) != 4 or not all(math.isfinite(v) for v in x):
                    raise ValueError("Input contains NaN, infinity or a value too large")
            return [int(x[0] > 5.5) for x in xs]

        @bentolite.api(input=ClipperFloatsInput(allow_integers=True))
        def loose(self, xs):
            return [float(x.sum()) for x in xs]
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    src = tmp_path_factory.mktemp("query_src")
    (src / "query_shapes_service.py").write_text(SERVICE)
    sys.path.insert(0, str(src))
    try:
        import query_shapes_service as module
    finally:
        sys.path.remove(str(src))
    home = tmp_path_factory.mktemp("home")
    bundle = Path(module.QueryShapes().save_to_dir(home / "bundle"))
    running = Server(str(bundle), home=home, log=home / "server.log")
    yield running
    running.stop()


@pytest.mark.parametrize("route", ["/species", "/species/predict"])
@pytest.mark.parametrize(
    ("body", "what"),
    [
        ('{"input": [6, 3, 5, 2]}', "Array input of type Number is not of type float"),
        ('{"input": [6.5, 3.0, 1e300, 2.2]}', "Array input of type Number is not of type float"),
        (
            '{"input_batch": [[6.5, 3.0, 5.8, 2.2], [5, 3.0, 1.4, 0.2]]}',
            "Array input of type Number is not of type float",
        ),
    ],
)
def test_server_refuses_what_clipper_refuses_with_clippers_answer(server, route, body, what):
    response = server.post(route, data=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    answer = json.loads(response.text)  # strict JSON
    assert answer["error"] == "Json error" and answer["cause"] == clipper_cause(what)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_server_refuses_non_finite_numbers_with_a_400(server, literal):
    body = '{"input": [6.5, 3.0, ' + literal + ", 2.2]}"
    response = server.post("/species", data=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "Json error" and answer["cause"].startswith("Error parsing JSON: ")


def test_server_answers_what_clipper_answers(server):
    huge = server.post(
        "/total/predict", data='{"input": [1e300, 2.5e300]}', headers={"content-type": "application/json"}
    )
    assert huge.status_code == 200 and huge.json()["output"] == pytest.approx(3.5e300)
    one = server.post("/species", json={"input": [6.5, 3.0, 5.8, 2.2]}).json()
    assert one["output"] == 1 and one["default"] is False
    loose = server.post(
        "/loose", data='{"input": [6, 3, 5, 2]}', headers={"content-type": "application/json"}
    )
    assert loose.status_code == 200 and loose.json()["output"] == 16.0
    assert server.get("/readyz").status_code == 200


def test_readme_shows_the_answer_the_server_gives(server):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [block.split("```")[0] for block in readme.split("```json\n")[1:]]
    (shown,) = [json.loads(block) for block in blocks if '"Json error"' in block]
    response = server.post(
        "/species", data='{"input": [6, 3, 5, 2]}', headers={"content-type": "application/json"}
    )
    answer = response.json()
    assert response.status_code == 400
    assert {key: answer[key] for key in shown} == shown
