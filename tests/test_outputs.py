"""Output adapters (bentolite/adapters/outputs.py, dataframe_output.py, file_output.py): on their
own, in ``@api``, in the OpenAPI document, and answering through a real server on loopback."""

from __future__ import annotations

import asyncio
import gzip
import importlib
import io
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from cli_runner import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import Server
from openapi_spec_validator import validate
from output_services import Outputs, png
from strict_parse import strict_loads

from bentolite import Service, adapters, api
from bentolite.adapters import (
    OUTPUTS,
    ClipperFloatsInput,
    ClipperOutput,
    DataframeInput,
    DataframeOutput,
    DefaultOutput,
    FileOutput,
    HttpRequest,
    ImageOutput,
    JsonInput,
    JsonOutput,
    NdarrayOutput,
    Output,
    TextOutput,
)
from bentolite.adapters.dataframe_output import negotiate
from bentolite.bundle import load_bundle, save_bundle
from bentolite.cli.bundles import predict
from bentolite.cli.main import cli
from bentolite.exceptions import InferenceError, InvalidArgument, NotAcceptable
from bentolite.server import create_app
from bentolite.server.openapi import openapi_spec

GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


def request(accept: str | None = None) -> HttpRequest:
    return HttpRequest(b"", headers={"accept": accept} if accept is not None else {})


# --- choosing an output ----------------------------------------------------------------------
def test_an_api_without_output_answers_json_and_a_clipper_api_as_clipper_does():
    assert isinstance(Outputs.__bentolite_apis__["special"].output, JsonOutput)
    assert isinstance(DataframeInput().default_output(), JsonOutput)
    clipper = ClipperFloatsInput()
    assert isinstance(clipper.default_output(), ClipperOutput)
    assert DefaultOutput().for_input(clipper).adapter is clipper
    assert isinstance(DefaultOutput().for_input(JsonInput()), JsonOutput)
    assert adapters.JsonSerializableOutput is JsonOutput and adapters.BaseOutputAdapter is Output


def test_api_checks_its_output_when_it_runs():
    with pytest.raises(InvalidArgument, match=r"needs an instance: JsonOutput\(\)"):
        api(input=JsonInput(), output=JsonOutput)
    with pytest.raises(InvalidArgument, match="output adapter such as JsonOutput"):
        api(input=JsonInput(), output="json")
    with pytest.raises(InvalidArgument, match="Clipper API answers as Clipper's query frontend"):
        api(input=ClipperFloatsInput(), output=JsonOutput())
    with pytest.raises(InvalidArgument, match="output_orient='split'"):
        DataframeOutput(output_orient="split")
    with pytest.raises(InvalidArgument, match="not a media type"):
        FileOutput(content_type="png")
    with pytest.raises(InvalidArgument, match="not a numpy dtype"):
        NdarrayOutput(dtype="nope")


def test_an_output_example_is_shown_in_the_document_and_checked():
    class Documented(Service):
        @api(input=JsonInput(), output=DataframeOutput(example=[{"p": 0.5}]))
        def table(self, x):
            return x

        @api(input=JsonInput(), output=TextOutput(example="yes"))
        def text(self, x):
            return x

    paths = openapi_spec(Documented())["paths"]
    table = paths["/table"]["post"]["responses"]["200"]["content"]
    assert table["application/json"]["example"] == [{"p": 0.5}] and "example" not in table["text/csv"]
    assert paths["/text"]["post"]["responses"]["200"]["content"]["text/plain"]["example"] == "yes"
    assert DataframeOutput(example=[{"p": 0.5}]).to_spec() == DataframeOutput().to_spec()
    with pytest.raises(InvalidArgument, match=r"JsonOutput\(example=...\) must be an answer as a JSON value"):
        JsonOutput(example=float("nan"))
    with pytest.raises(InvalidArgument, match="must be a str"):
        TextOutput(example=3)


def test_every_output_has_a_schema_and_a_record():
    for name, cls in OUTPUTS.items():
        output = cls(ClipperFloatsInput()) if cls is ClipperOutput else cls()
        assert output.to_spec()["type"] == name
        content = output.openapi_response()
        assert content and all("schema" in media for media in content.values())


# --- rendering, one output at a time ---------------------------------------------------------
def test_json_output_is_strict_and_encodes_numpy_and_pandas():
    answer = JsonOutput().to_http({"p": np.array([0.25, np.nan]), "s": pd.Series([np.inf])}, request())
    assert answer.media_type == "application/json"
    assert strict_loads(answer.body) == {"p": [0.25, None], "s": [None]}
    assert JsonOutput(ensure_ascii=True).to_http("é", request()).body == b'"\\u00e9"'


def test_dataframe_output_records_columns_and_csv():
    frame = pd.DataFrame({"a": [1.5, np.nan], "b": ["x", "y"]})
    records = DataframeOutput().to_http(frame, request())
    assert records.media_type == "application/json"
    assert strict_loads(records.body) == [{"a": 1.5, "b": "x"}, {"a": None, "b": "y"}]
    columns = DataframeOutput(output_orient="columns").to_http(frame, request())
    assert strict_loads(columns.body) == {"a": [1.5, None], "b": ["x", "y"]}
    csv = DataframeOutput().to_http(frame, request("text/csv"))
    assert csv.media_type == "text/csv; charset=utf-8" and csv.body == b"a,b\n1.5,x\n,y\n"
    # a Series is one column; an array or rows make a table
    assert strict_loads(DataframeOutput().to_http(pd.Series([1, 2], name="p"), request()).body) == [
        {"p": 1},
        {"p": 2},
    ]
    assert DataframeOutput().to_http(np.array([[1, 2]]), request("text/csv")).body == b"0,1\n1,2\n"
    with pytest.raises(InferenceError, match="cannot make a table of a int result"):
        DataframeOutput().to_http(3, request())
    with pytest.raises(NotAcceptable, match="allows none of the types"):
        DataframeOutput().to_http(frame, request("application/xml"))


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        ("text/csv;q=0.2, application/json;q=0.9", "application/json"),
        ("*/*, application/json;q=0", "text/csv"),
        ("text/csv;q=0, */*", "application/json"),
        ("TEXT/CSV", "text/csv"),
        ("text/csv;q=oops", "text/csv"),  # a malformed quality is ignored, not a refusal
        ("image/png, text/html;q=0.9", None),
        ("*/*;q=0", None),
    ],
)
def test_accept_negotiation(accept, chosen):
    offered = ("application/json", "text/csv")
    if chosen is None:
        with pytest.raises(NotAcceptable):
            negotiate(accept, offered)
    else:
        assert negotiate(accept, offered) == chosen


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=60))
def test_any_accept_header_gives_an_offered_type_or_406(accept):
    try:
        assert negotiate(accept, ("application/json", "text/csv")) in ("application/json", "text/csv")
    except NotAcceptable as exc:
        assert exc.http_status == 406


def test_ndarray_text_file_and_image_outputs():
    half = NdarrayOutput(dtype="float32").to_http([[1, 2.5], [np.nan, 4]], request())
    assert strict_loads(half.body) == [[1.0, 2.5], [None, 4.0]]
    with pytest.raises(InferenceError, match="cannot make a float32 array of the list result"):
        NdarrayOutput(dtype="float32").to_http(["a"], request())

    text = TextOutput().to_http("héllo", request())
    assert text.body == "héllo".encode() and text.media_type == "text/plain; charset=utf-8"
    with pytest.raises(InferenceError, match="TextOutput renders a str; the API returned a int"):
        TextOutput().to_http(3, request())

    data = bytes(range(256))
    assert FileOutput().to_http(data, request()).body == data
    assert FileOutput().to_http(memoryview(data), request()).body == data
    stream = io.BytesIO(data)
    assert (
        FileOutput(content_type="application/pdf").to_http(stream, request()).media_type == "application/pdf"
    )
    assert stream.closed
    with pytest.raises(InferenceError, match="sends bytes; the API returned a str"):
        FileOutput().to_http("text", request())

    image = png((1, 2, 3))
    assert ImageOutput().to_http(image, request()).media_type == "image/png"
    assert ImageOutput().to_http(GIF, request()).media_type == "image/gif"
    assert ImageOutput().to_http(b"\xff\xd8\xff\xe0xx", request()).media_type == "image/jpeg"
    assert ImageOutput().to_http(b"RIFF\0\0\0\0WEBPVP8 ", request()).media_type == "image/webp"
    assert ImageOutput(extension_format="jpg").to_http(b"any", request()).media_type == "image/jpeg"
    with pytest.raises(InferenceError, match="cannot tell the returned bytes' image format"):
        ImageOutput().to_http(b"not an image", request())


def test_the_command_line_prediction_renders_with_the_output(store_home):
    svc = Outputs()
    assert predict(svc, "swatch", b'{"rgb": [9, 8, 7]}', "application/json").body == png((9, 8, 7))
    assert predict(svc, "shout", b"hi", "text/plain").body == b"HI!"
    save_bundle(svc, version="1", target=store_home / "bundles" / "Outputs" / "1")
    image = CliRunner().invoke(cli, ["run", "Outputs:1", "swatch", "--input", '{"rgb": [9, 8, 7]}'])
    assert image.exit_code == 0 and image.stdout_bytes == png((9, 8, 7))  # no newline added
    text = CliRunner().invoke(cli, ["run", "Outputs:1", "shout", "--input", '"hi"'])
    assert text.exit_code == 0 and text.stdout == "HI!\n"


def test_a_custom_output_renders_and_documents_itself():
    class Yaml(Output):
        media_type = "application/yaml"

        def render(self, result):
            return f"answer: {result}\n".encode()

        def openapi_response(self):
            return {self.media_type: {"schema": {"type": "string"}}}

    class Custom(Service):
        @api(input=JsonInput(), output=Yaml())
        def echo(self, x):
            return x

    async def post():
        transport = httpx.ASGITransport(app=create_app(Custom()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/echo", json=42)

    answer = asyncio.run(post())
    assert answer.headers["content-type"] == "application/yaml" and answer.text == "answer: 42\n"
    operation = openapi_spec(Custom())["paths"]["/echo"]["post"]
    assert set(operation["responses"]["200"]["content"]) == {"application/yaml"}
    assert operation["x-bentolite-output"] == {"type": "Yaml"}


# --- the OpenAPI document and the bundle record -----------------------------------------------
def test_openapi_responses_come_from_the_outputs_and_errors_share_one_schema():
    paths = openapi_spec(Outputs())["paths"]

    def ok(route):
        return paths[route]["post"]["responses"]["200"]["content"]

    assert set(ok("/swatch")) == {"image/png"} and ok("/swatch")["image/png"]["schema"]["format"] == "binary"
    assert set(ok("/double")) == {"application/json", "text/csv"}
    assert ok("/double")["application/json"]["schema"]["type"] == "array"
    assert ok("/double_batch")["application/json"]["schema"]["type"] == "object"
    assert set(ok("/shout")) == {"text/plain"}
    assert ok("/half")["application/json"]["schema"]["items"]["oneOf"][0]["type"] == "number"
    for route, item in paths.items():
        if "post" not in item:
            continue
        responses = item["post"]["responses"]
        errors = {status for status in responses if status != "200"}
        assert all(responses[s] == {"$ref": f"#/components/responses/E{s}"} for s in errors)
        assert ("406" in errors) == (route in ("/double", "/double_batch"))
    assert paths["/double"]["post"]["x-bentolite-output"] == {
        "type": "DataframeOutput",
        "options": {"output_orient": "records"},
    }


def test_a_saved_bundle_records_each_output_and_loads_the_same(tmp_path):
    path = save_bundle(Outputs(), version="1", target=tmp_path / "b")
    loaded = load_bundle(path)
    records = {a.name: a.output for a in loaded_meta(path).apis}
    assert records["swatch"] == {"type": "FileOutput", "options": {"content_type": "image/png"}}
    assert records["special"] == {"type": "JsonOutput"}
    assert loaded.apis["swatch"].output.to_spec() == records["swatch"]


def loaded_meta(path):
    from bentolite.bundle_meta import BundleMeta

    return BundleMeta.read(path)


# --- through a real server -------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from output_services import __file__ as services_file

    home = tmp_path_factory.mktemp("outputs")
    live = Server(f"{services_file}:Outputs", home=home, log=home / "server.log")
    yield live
    live.stop()


def test_json_answers_parse_strictly_with_nan_and_infinity_as_null(server):
    answer = server.post("/special", json={"k": [1, "é"]})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert strict_loads(answer.content) == {
        "nan": None,
        "inf": None,
        "float32": [0.5, None, None],
        "frame": [{"a": 1.5}, {"a": None}],
        "na": None,
        "echo": {"k": [1, "é"]},
    }
    ascii_only = server.post("/ascii", json={"name": "Zoë"})
    assert ascii_only.content.isascii() and strict_loads(ascii_only.content) == {"name": "Zoë"}


def test_returned_bytes_are_sent_as_they_are_with_their_content_type(server):
    answer = server.post("/swatch", json={"rgb": [255, 0, 10], "width": 3})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.content == png((255, 0, 10), width=3)
    gif = server.post("/same_image", data=GIF, headers={"Content-Type": "image/gif"})
    assert gif.headers["content-type"] == "image/gif" and gif.content == GIF
    bad = server.post(
        "/same_image", data=b"plain bytes", headers={"Content-Type": "application/octet-stream"}
    )
    assert bad.status_code == 500 and "image format" in strict_loads(bad.content)["error"]


def test_a_batched_file_api_answers_each_request_its_own_bytes(server):
    bodies = [bytes([i]) * (i + 1) + b"end" for i in range(24)]

    def send(body):
        return server.post("/reverse", data=body, headers={"Content-Type": "application/octet-stream"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, bodies))
    for body, answer in zip(bodies, answers):
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
        assert answer.content == body[::-1]


def test_text_answers_and_a_result_the_output_cannot_render(server):
    shout = server.post(
        "/shout", data="héllo".encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert shout.headers["content-type"] == "text/plain; charset=utf-8" and shout.text == "HÉLLO!"
    assert server.post("/not_text", json="fine").text == "fine"
    refused = server.post("/not_text", json=7)
    error = strict_loads(refused.content)
    assert refused.status_code == 500 and error["error"] == "TextOutput renders a str; the API returned a int"
    assert error["error_id"] in (server.log.read_text())
    assert server.post("/not_text", json="still serving").status_code == 200


def test_a_clipper_api_answers_strict_json_too(server):
    answer = server.post("/clipper_words", json={"input_batch": ["text", "float", "NaN is a word"]})
    outputs = [p["output"] for p in strict_loads(answer.content)["batch_predictions"]]
    assert outputs == [None, None, "NaN is a word"]


def test_a_table_answers_json_or_csv_as_the_client_accepts(server):
    rows = [{"a": 1.5, "b": 0.5}, {"a": 2.5, "b": -1.0}]
    as_json = server.post("/double", json=rows)
    assert as_json.headers["content-type"] == "application/json"
    assert strict_loads(as_json.content) == [{"a": 3.0, "b": 1.0}, {"a": 5.0, "b": None}]
    as_csv = server.post("/double", json=rows, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.text == "a,b\n3.0,1.0\n5.0,\n"  # the NaN cell is an empty field
    refused = server.post("/double", json=rows, headers={"Accept": "application/xml"})
    assert refused.status_code == 406 and "Accept" in strict_loads(refused.content)["error"]


def test_a_batched_table_renders_each_request_with_its_own_accept(server):
    def send(i):
        accept = "text/csv" if i % 2 else "application/json"
        return i, server.post("/double_batch", json=[{"v": i}, {"v": i + 0.5}], headers={"Accept": accept})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(24)))
    for i, answer in answers:
        assert answer.status_code == 200
        if i % 2:
            assert pd.read_csv(io.StringIO(answer.text))["v"].tolist() == [2 * i, 2 * i + 1]
        else:
            assert strict_loads(answer.content) == {"v": [2 * i, 2 * i + 1]}


def test_an_array_answer_is_cast_to_the_output_dtype(server):
    answer = server.post("/half", json=[[1, 3], [0.2, 1e300]])
    # float32 holds 0.1 as 0.100000001490116..., and 5e299 overflows to infinity: null
    assert strict_loads(answer.content) == [[0.5, 1.5], [float(np.float32(0.1)), None]]


def test_the_document_served_lists_the_answers(server):
    spec = strict_loads(server.get("/docs.json").content)
    assert set(spec["paths"]["/double"]["post"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
    }
    assert json.dumps(spec["components"]["responses"]["E406"]).count("#/components/schemas/Error") == 1


# --- the README's example --------------------------------------------------------------------
def test_the_readme_outputs_example_answers_as_it_says(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if b.startswith("# reports.py"))
    (tmp_path / "reports.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from reports import Reports
    finally:
        sys.modules.pop("reports", None)  # other tests may import a module of that name

    async def calls():
        transport = httpx.ASGITransport(app=create_app(Reports()))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.post("/totals", json=[{"a": 1, "b": 2}]),
                await client.post("/totals", json=[{"a": 1, "b": 2}], headers={"Accept": "text/csv"}),
                await client.post("/ratio", json={"a": 1, "b": 0}),
                await client.post("/compress", content=b"hello", headers={"Content-Type": "text/plain"}),
                await client.post("/shout", content=b"hi", headers={"Content-Type": "text/plain"}),
            ]

    totals, csv, ratio, compressed, shout = asyncio.run(calls())
    assert strict_loads(totals.content) == [{"a": 1, "b": 2, "total": 3}]
    assert csv.headers["content-type"] == "text/csv; charset=utf-8" and csv.text == "a,b,total\n1,2,3\n"
    assert ratio.content == b"null"
    assert compressed.headers["content-type"] == "application/gzip"
    assert gzip.decompress(compressed.content) == b"hello"
    assert shout.text == "HI"


# --- a client generated from the document -----------------------------------------------------
#: openapi-python-client reads binary answers as application/octet-stream only; the image types
#: are mapped to it, as a user of the generator does in its configuration
CLIENT_CONFIG = """\
content_type_overrides:
  image/png: application/octet-stream
  image/*: application/octet-stream
  text/plain: application/octet-stream
  multipart/form-data: x-not-generated/multipart
"""


def test_a_generated_client_reads_every_kind_of_answer(server, tmp_path):
    spec = strict_loads(server.get("/docs.json").content)
    validate(spec)
    (tmp_path / "doc.json").write_text(json.dumps(spec))
    (tmp_path / "config.yaml").write_text(CLIENT_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    command = [str(generator), "generate", "--path", str(tmp_path / "doc.json"), "--meta", "none"]
    command += ["--output-path", str(tmp_path / "outputs_client"), "--config", str(tmp_path / "config.yaml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "response will be omitted" not in done.stdout, done.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        client = importlib.import_module("outputs_client.client").Client(
            base_url=server.base, raise_on_unexpected_status=True
        )

        def call(operation, body):
            answer = importlib.import_module(f"outputs_client.api.ap_is.{operation}").sync_detailed(
                client=client, body=body
            )
            assert answer.status_code == 200, answer.content
            return answer.parsed

        special = call("special", {"k": 1})
        assert special["nan"] is None and special["float32"] == [0.5, None, None]
        assert call("swatch", {"rgb": [1, 2, 3]}).payload.read() == png((1, 2, 3))
        assert call("half", [[1.0, 3.0]]) == [[0.5, 1.5]]
        rows = call("double", [[1, 0.5], [2, -1]])
        assert [row.to_dict() for row in rows] == [{"0": 2, "1": 1.0}, {"0": 4, "1": None}]
        assert call("not_text", "words") == b"words"  # the body of a text/plain answer
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "outputs_client" or m.startswith("outputs_client.")]:
            del sys.modules[name]
