"""Generated request bodies against every input adapter: any JSON, CSV or byte body gets a 200
or a 4xx with a JSON error, never a 5xx; a 200 holds exactly the rows (and values) sent.

The bulk runs in process (Starlette's TestClient over the ASGI interface, fast); one class runs
against a real ``bentolite serve`` on loopback.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import math

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from input_services import IRIS, inputs
from live_server import Server

from bentolite.server import create_app

FIXTURES_MODULE = "input_services.py"
TABLE_APIS = ["frame", "iris", "typed", "batched", "columns"]
OTHER_APIS = ["array", "pairs", "json", "text", "file"]
CLIPPER_APIS = ["doubles", "floats", "ints", "strings", "bytes_len"]
COLUMN_NAMES = [*IRIS, "x", "n", "s", "b", "a", ""]

# --- strategies ---------------------------------------------------------------------------------
scalars = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
)
cells = st.one_of(
    scalars,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)

value_rows = st.lists(st.lists(st.one_of(numbers, cells), max_size=6), max_size=5)
numeric_rows = st.integers(1, 4).flatmap(
    lambda n: st.lists(st.lists(numbers, min_size=n, max_size=n), min_size=1, max_size=4)
) | st.lists(st.lists(numbers, min_size=3, max_size=5), min_size=1, max_size=4)
object_rows = st.lists(
    st.dictionaries(st.sampled_from(COLUMN_NAMES), st.one_of(numbers, cells), max_size=6), max_size=4
)
iris_objects = st.lists(
    st.fixed_dictionaries({c: numbers for c in IRIS}, optional={"x": cells}), min_size=1, max_size=3
)
column_objects = st.dictionaries(
    st.sampled_from(COLUMN_NAMES), st.lists(st.one_of(numbers, cells), max_size=4), max_size=5
)
# bodies no encoder writes: non-standard literals, overflowing numbers, surrogates, deep nesting
odd_tokens = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "Infinity",
        "1e400",
        "-1e400",
        "1e-400",
        '"\\ud800"',
        "null",
        "true",
        '"1.5"',
        "[]",
        "{}",
        "1" * 400,
    ]
)
odd_json = st.one_of(
    st.lists(st.one_of(odd_tokens, numbers.map(json.dumps)), min_size=1, max_size=5).map(
        lambda t: "[[" + ",".join(t) + "]]"
    ),
    st.integers(1, 1200).map(lambda d: "[" * d + "1" + "]" * d),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)
csv_fields = st.one_of(
    numbers.map(str),
    st.sampled_from(
        ["", "x", "nan", "inf", "-inf", "1e400", "1_0", '"q,q"', " 1 ", "true", "0", '"', "\x00"]
    ),
    st.text(max_size=3),
)
csv_bodies = st.builds(
    lambda header, rows, end: ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + end,
    st.one_of(st.just(IRIS), st.lists(st.sampled_from(COLUMN_NAMES), max_size=6)),
    st.lists(st.lists(csv_fields, min_size=0, max_size=6), max_size=4)
    | st.integers(1, 6).flatmap(
        lambda n: st.lists(st.lists(numbers.map(str), min_size=n, max_size=n), max_size=3)
    ),
    st.sampled_from(["", "\n", "\r\n", "\n\n"]),
)

json_bodies = st.one_of(
    json_values.map(json.dumps),
    value_rows.map(json.dumps),
    numeric_rows.map(json.dumps),
    object_rows.map(json.dumps),
    iris_objects.map(json.dumps),
    column_objects.map(json.dumps),
    odd_json,
)


def rows_of(*columns, names=None):
    """Row arrays (or, with ``names``, row objects) of one strategy per column, sometimes one
    value short or long, so that both the 200 and the 400 paths are walked."""
    row = st.tuples(*columns).map(list)
    ragged = st.one_of(row, row.map(lambda r: r[:-1]), st.tuples(row, scalars).map(lambda t: [*t[0], t[1]]))
    good = st.lists(row, min_size=1, max_size=4)
    rows = st.one_of(good, good, good, st.lists(st.one_of(row, ragged), min_size=1, max_size=4))
    if names is None:
        return rows
    return rows.map(lambda rs: [dict(zip(names, r)) for r in rs])


def csv_of(names, rows):
    return rows.map(lambda rs: ",".join(names) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rs))


as_json = st.just("application/json")
as_csv = st.just("text/csv")
iris_row = [numbers] * 4


def mostly(valid, invalid=cells):
    return st.one_of(valid, valid, valid, valid, valid, invalid)


typed_row = [mostly(st.integers(-(2**31), 2**31 - 1)), mostly(st.text(max_size=3)), mostly(st.booleans())]
same_length_columns = st.integers(1, 4).flatmap(
    lambda n: st.dictionaries(
        st.sampled_from(COLUMN_NAMES),
        st.lists(mostly(numbers, st.none()), min_size=n, max_size=n),
        min_size=1,
        max_size=4,
    )
)
#: API -> strategies of (content type, body) near what it accepts, besides the generic ones
NEAR_VALID = {
    "frame": [st.tuples(as_json, rows_of(numbers, st.text(max_size=3)).map(json.dumps))],
    "iris": [
        st.tuples(as_json, rows_of(*iris_row).map(json.dumps)),
        st.tuples(as_json, rows_of(*iris_row, names=IRIS).map(json.dumps)),
        st.tuples(as_csv, csv_of(IRIS, rows_of(*iris_row))),
    ],
    "typed": [
        st.tuples(as_json, rows_of(*typed_row).map(json.dumps)),
        st.tuples(as_csv, csv_of(["n", "s", "b"], rows_of(*typed_row))),
    ],
    "batched": [st.tuples(as_json, rows_of(numbers, numbers).map(json.dumps))],
    "columns": [st.tuples(as_json, st.one_of(column_objects, same_length_columns).map(json.dumps))],
    "array": [st.tuples(as_json, st.one_of(rows_of(numbers, numbers), st.lists(numbers)).map(json.dumps))],
    "pairs": [
        st.tuples(
            as_json, rows_of(st.integers(-1000, 1000), st.integers(-1000, 1000) | numbers).map(json.dumps)
        )
    ],
    "json": [st.tuples(as_json, json_values.map(json.dumps))],
    "text": [st.tuples(st.sampled_from(["text/plain", "text/plain; charset=latin-1", "text/x"]), st.text())],
    "file": [st.tuples(st.sampled_from(["application/octet-stream", "image/png"]), st.text())],
    "doubles": [st.tuples(as_json, rows_of(numbers, numbers).map(lambda b: json.dumps({"input_batch": b})))],
    "floats": [st.tuples(as_json, st.lists(numbers).map(lambda b: json.dumps({"input": b})))],
    "ints": [
        st.tuples(
            as_json, rows_of(st.integers(-(2**32), 2**32)).map(lambda b: json.dumps({"input_batch": b}))
        )
    ],
    "strings": [
        st.tuples(as_json, st.text().map(lambda t: json.dumps({"input": t}))),
        st.tuples(as_json, st.lists(st.text() | scalars).map(lambda t: json.dumps({"input_batch": t}))),
    ],
    "bytes_len": [
        st.tuples(as_json, st.binary().map(lambda b: json.dumps({"input": base64.b64encode(b).decode()}))),
        st.tuples(as_json, st.text(max_size=8).map(lambda t: json.dumps({"input": t}))),
    ],
}
#: (content type, body) of any kind
bodies = st.one_of(
    st.tuples(as_json, json_bodies),
    st.tuples(as_csv, csv_bodies),
    st.tuples(
        st.sampled_from(["text/plain", "application/octet-stream", "application/json"]), st.text(max_size=20)
    ),
)
clipper_bodies = st.tuples(
    as_json,
    st.one_of(
        st.fixed_dictionaries({"input": st.one_of(json_values, st.lists(numbers, max_size=4))}).map(
            json.dumps
        ),
        st.fixed_dictionaries(
            {"input_batch": st.lists(st.one_of(st.lists(numbers, max_size=3), json_values), max_size=3)}
        ).map(json.dumps),
        odd_json.map(lambda b: '{"input": ' + b + "}"),
        json_bodies,
    ),
)


def bodies_for(api: str) -> st.SearchStrategy:
    generic = clipper_bodies if api in CLIPPER_APIS else bodies
    return st.one_of(generic, *NEAR_VALID[api], *NEAR_VALID[api])


# --- what a 200 must hold ------------------------------------------------------------------------
def _same(sent, got) -> bool:
    if isinstance(sent, bool) or isinstance(got, bool):
        return sent is got or sent == got
    if isinstance(sent, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(sent), float(got), rel_tol=1e-12, abs_tol=0.0)
    return sent == got


def sent_rows(content_type: str, body: str) -> list[dict] | None:
    """The rows a table body holds, as column -> raw value (CSV fields stay strings)."""
    if content_type == "text/csv":
        records = [r for r in csv.reader(io.StringIO(body, newline="")) if r]
        header, rows = records[0], records[1:]
        assert all(len(r) == len(header) for r in rows), "a 200 for a ragged CSV"
        return [dict(zip(header, r)) for r in rows]
    value = json.loads(body)
    if isinstance(value, dict):
        lengths = {len(v) for v in value.values()}
        assert len(lengths) == 1, "a 200 for columns of different lengths"
        return [{k: v[i] for k, v in value.items()} for i in range(lengths.pop())]
    if all(isinstance(r, list) for r in value):
        assert len({len(r) for r in value}) == 1, "a 200 for ragged rows"
        return [{str(i): v for i, v in enumerate(r)} for r in value]
    return value


def check_table_answer(api: str, content_type: str, body: str, answer: list) -> None:
    rows = sent_rows(content_type, body)
    assert len(answer) == len(rows), f"{len(rows)} row(s) sent, {len(answer)} answered"
    value_rows = content_type != "text/csv" and all(isinstance(r, list) for r in json.loads(body))
    declared = {"iris": IRIS, "batched": ["a", "b"], "typed": ["n", "s", "b"]}.get(api)
    for sent, got in zip(rows, answer):
        if value_rows and declared:  # values in the declared column order
            sent = dict(zip(declared, sent.values()))
        for column, value in got.items():
            raw = sent[column]
            if content_type == "text/csv":
                word = raw.strip().lower()
                assert (
                    _same(raw, value)
                    or (isinstance(value, bool) and word in (("true", "1") if value else ("false", "0")))
                    or (not isinstance(value, (bool, str)) and _same(float(raw), value))
                ), (column, raw, value)
            else:
                assert _same(raw, value), (column, raw, value)


def check_answer(api: str, content_type: str, body: str, response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, (
        f"{api}: {response.status_code} for {content_type} {body[:200]!r}: {response.text[:300]}"
    )
    answer = json.loads(response.content)  # strict: every answer is JSON
    if response.status_code != 200:
        assert isinstance(answer["error"], str) and answer["error"] and "\n" not in answer["error"]
        return
    if api in TABLE_APIS and api != "columns":
        check_table_answer(api, content_type, body, answer)
    elif api == "columns":  # missing values are allowed there: only the row count is checked
        assert len(answer) == len(sent_rows(content_type, body))
    elif api == "json":
        assert answer == json.loads(body)
    elif api == "array":
        assert answer["shape"] == list(_shape(json.loads(body)))
    elif api == "pairs":
        assert answer == [sum(pair) for pair in json.loads(body)]


def _shape(value) -> tuple[int, ...]:
    return (
        (len(value), *_shape(value[0]))
        if isinstance(value, list) and value
        else ((0,) if value == [] else ())
    )


class InProcess:
    """Requests to an ASGI app through httpx's ASGI transport, from synchronous test code."""

    def __init__(self, portal, app) -> None:
        self.portal = portal
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.portal.call(functools.partial(self.http.post, path, **kwargs))


@pytest.fixture(scope="module")
def client():
    with anyio.from_thread.start_blocking_portal() as portal:
        in_process = InProcess(portal, create_app(inputs))
        yield in_process
        portal.call(in_process.http.aclose)


@pytest.mark.parametrize("api", TABLE_APIS + OTHER_APIS)
@settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_bodies_get_200_or_4xx(client, api, data):
    content_type, body = data.draw(bodies_for(api))
    response = client.post(
        f"/{api}", content=body.encode("utf-8", "surrogatepass"), headers={"content-type": content_type}
    )
    check_answer(api, content_type, body, response)


@pytest.mark.parametrize("api", CLIPPER_APIS)
@settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_clipper_bodies_get_200_or_4xx(client, api, data):
    content_type, body = data.draw(bodies_for(api))
    response = client.post(
        f"/{api}", content=body.encode("utf-8", "surrogatepass"), headers={"content-type": content_type}
    )
    check_answer(api, content_type, body, response)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from conftest import FIXTURES

    directory = tmp_path_factory.mktemp("live_inputs")
    server = Server(f"{FIXTURES / FIXTURES_MODULE}:inputs", home=directory, log=directory / "server.log")
    yield server
    server.stop()


@settings(
    deadline=None,
    max_examples=80,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(api=st.sampled_from(["iris", "typed", "batched"]), data=st.data())
def test_generated_table_bodies_against_a_live_server(live, api, data):
    content_type, body = data.draw(bodies_for(api))
    response = live.post(
        f"/{api}", data=body.encode("utf-8", "surrogatepass"), headers={"content-type": content_type}
    )
    check_answer(api, content_type, body, response)
    assert live.get("/readyz").status_code == 200
