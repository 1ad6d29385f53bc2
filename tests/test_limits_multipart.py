"""Multipart bodies against a real server: part count and part header caps, truncated and
nested bodies, linear work however a body is cut; plus the reader itself on generated forms."""

from __future__ import annotations

import base64
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import Server

from bentolite.adapters.multipart import FormLimits, first_file
from bentolite.exceptions import BadInput, PartHeaderTooLarge, TooManyParts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOUNDARY = "bNd4ry"
FORM = f"multipart/form-data; boundary={BOUNDARY}"


def part(headers: dict[str, str], data: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def file_part(data: bytes, filename: str = "f.bin", **extra: str) -> bytes:
    headers = {"Content-Disposition": f'form-data; name="file"; filename="{filename}"', **extra}
    return part(headers, data)


def field(name: str, value: bytes = b"v") -> bytes:
    return part({"Content-Disposition": f'form-data; name="{name}"'}, value)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = Server(
        str(FIXTURES / "hostile_services.py:bounded"),
        "--max-parts",
        "16",
        "--max-part-header-size",
        "1KB",
        home=home,
        log=home / "server.log",
    )
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


def post(server: Server, body: bytes):
    return server.post("/size", data=body, headers={"Content-Type": FORM})


def assert_still_serving(server: Server) -> None:
    assert post(server, form(file_part(b"after"))).json() == {"size": 5, "head": "after"}
    assert server.get("/readyz").status_code == 200


def test_the_first_file_part_reaches_the_function(server):
    data = bytes(range(256)) * 4
    body = form(field("note", b"not a file"), file_part(data), file_part(b"second"))
    assert post(server, body).json() == {"size": 1024, "head": data[:16].decode("latin-1")}
    encoded = file_part(base64.b64encode(data), **{"Content-Transfer-Encoding": "base64"})
    assert post(server, form(encoded)).json()["size"] == 1024


def test_twenty_thousand_tiny_parts_are_a_quick_413(server):
    body = form(*(field(f"f{i}") for i in range(20_000)))
    assert len(body) > 1_000_000
    started = time.perf_counter()
    response = post(server, body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 413
    assert response.json() == {
        "error": "multipart body holds more than 16 parts",
        "detail": "raise the limit with bentolite serve --max-parts",
        "request_id": response.headers["x-request-id"],
    }
    assert elapsed < 2.0  # the parse stops at part 17; sending 1.1 MB is most of it
    assert_still_serving(server)


def test_a_part_with_too_many_header_bytes_is_a_400(server):
    response = post(server, form(file_part(b"x", **{"X-Pad": "p" * 2000})))
    assert response.status_code == 400
    assert response.json()["error"] == "part 1 of the multipart body has more than 1024 bytes of headers"
    assert_still_serving(server)


@pytest.mark.parametrize(
    "body, error",
    [
        (form(file_part(b"payload"))[:-12], "multipart body ends before its closing boundary (truncated?)"),
        (file_part(b"payload"), "multipart body ends before its closing boundary (truncated?)"),
        (
            form(part({"Content-Type": "multipart/mixed; boundary=in"}, b"--in\r\n\r\nx\r\n--in--")),
            "part 1 of the multipart body is itself multipart/mixed; nested multipart is not accepted",
        ),
        (b"no boundary here", "multipart body holds no boundary line of the boundary its content type names"),
        (form(part({"Broken header line": ""}, b"x")).replace(b"Broken header line: ", b"Broken"), None),
    ],
    ids=["truncated", "no-closing-boundary", "nested", "no-boundary", "bad-header"],
)
def test_a_malformed_form_is_a_400_never_a_file(server, body, error):
    response = post(server, body)
    assert response.status_code == 400, response.text
    if error is not None:
        assert response.json()["error"] == error
    assert_still_serving(server)


# --- the reader on generated forms --------------------------------------------------------------

datas = st.binary(max_size=200).filter(lambda d: f"--{BOUNDARY}".encode() not in d)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(datas, max_size=5), file=datas, after=st.lists(datas, max_size=3))
def test_the_reader_finds_exactly_the_first_file(fields, file, after):
    body = form(*(field(f"f{i}", d) for i, d in enumerate(fields)), file_part(file), *map(file_part, after))
    found = first_file(body, BOUNDARY)
    assert found is not None and found.data == file and found.filename == "f.bin"


@settings(max_examples=200, deadline=None)
@given(file=datas, cut=st.integers(min_value=0))
def test_a_cut_body_is_refused_or_complete(file, cut):
    body = form(field("a"), file_part(file))
    cut = cut % len(body)
    try:
        found = first_file(body[:cut], BOUNDARY)
    except BadInput:
        return
    # only a cut inside the epilogue's last CRLF can leave a complete form
    assert cut >= len(body) - 2 and found is not None and found.data == file


def test_caps_are_exact():
    body = form(*(field(f"f{i}") for i in range(4)))
    assert first_file(body, BOUNDARY, FormLimits(max_parts=4)) is not None
    with pytest.raises(TooManyParts):
        first_file(body, BOUNDARY, FormLimits(max_parts=3))
    padded = form(file_part(b"x", **{"X-Pad": "p" * 100}))
    header_bytes = len(padded.split(b"\r\n\r\n")[0]) - len(f"--{BOUNDARY}\r\n")
    assert first_file(padded, BOUNDARY, FormLimits(max_part_header_size=header_bytes)) is not None
    with pytest.raises(PartHeaderTooLarge):
        first_file(padded, BOUNDARY, FormLimits(max_part_header_size=header_bytes - 1))
