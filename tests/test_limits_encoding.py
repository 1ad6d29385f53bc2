"""Request bodies with a Content-Encoding against a real server: gzip and deflate decoded
within --max-body-size, other codings a 415, broken streams a 400."""

from __future__ import annotations

import gzip
import json
import signal
import zlib
from pathlib import Path

import pytest
from live_server import Server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    server = Server(
        str(FIXTURES / "hostile_services.py:bounded"),
        "--max-body-size",
        f"{LIMIT // 1024}KB",
        home=home,
        log=home / "server.log",
    )
    yield server
    assert server.stop() in (0, -signal.SIGTERM)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def send(server: Server, path: str, body: bytes, encoding: str, content_type: str):
    return server.post(path, data=body, headers={"Content-Type": content_type, "Content-Encoding": encoding})


def assert_still_serving(server: Server) -> None:
    assert server.post("/echo", json={"still": "here"}).json() == {"still": "here"}


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("gzip, gzip", lambda d: gzip.compress(gzip.compress(d))),
        ("identity", lambda d: d),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "gzip-twice", "identity"],
)
def test_a_coded_body_reaches_the_function_decoded(server, encoding, encode):
    data = b"\x89PNG" + bytes(range(256)) * 100
    response = send(server, "/size", encode(data), encoding, "application/octet-stream")
    assert response.json() == {"size": len(data), "head": data[:16].decode("latin-1")}
    value = {"rows": [[i, i * 2] for i in range(500)]}
    answer = send(server, "/echo", encode(json.dumps(value).encode()), encoding, "application/json")
    assert answer.json() == value


def test_a_body_that_decodes_past_the_limit_is_a_413(server):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MB of zeros: about 64 KB compressed
    assert len(bomb) < LIMIT
    response = send(server, "/size", bomb, "gzip", "application/octet-stream")
    assert response.status_code == 413
    assert response.json() == {
        "error": f"the gzip-decoded request body is over the server's limit of {LIMIT} bytes",
        "detail": "raise it with bentolite serve --max-body-size",
        "request_id": response.headers["x-request-id"],
    }
    just_fits = gzip.compress(b"a" * LIMIT)
    assert send(server, "/size", just_fits, "gzip", "application/octet-stream").json()["size"] == LIMIT
    assert_still_serving(server)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_another_coding_is_a_415(server, encoding):
    response = send(server, "/size", b"\x28\xb5\x2f\xfd whatever", encoding, "application/octet-stream")
    assert response.status_code == 415
    assert "is not supported; send the body as gzip, deflate or identity" in response.json()["error"]
    assert_still_serving(server)


@pytest.mark.parametrize(
    "body, error",
    [
        (b"plain bytes, not gzip", "request body is not valid gzip data"),
        (gzip.compress(b"x" * 1000)[:-12], "request body ends in the middle of its gzip stream (truncated?)"),
    ],
    ids=["not-gzip", "truncated"],
)
def test_a_broken_stream_is_a_400(server, body, error):
    response = send(server, "/size", body, "gzip", "application/octet-stream")
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert_still_serving(server)
