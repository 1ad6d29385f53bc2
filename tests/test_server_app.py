"""The HTTP app (bentolite/server/app.py), in process through its ASGI interface."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from sample_services import Echo, IrisClassifier
from server_services import Batched, Faulty, Greeter, Slow

from bentolite.bundle import load_bundle, save_bundle
from bentolite.exceptions import ArtifactError, InvalidArgument
from bentolite.server import create_app
from bentolite.server.docs import swagger_ui_dir
from bentolite.server.limits import parse_size
from bentolite.server.openapi import openapi_spec


async def _request(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    return asyncio.run(_request(app, method, path, **kwargs))


@pytest.fixture(scope="module")
def echo_app():
    return create_app(Echo(), max_body_size="1KB")


@pytest.fixture(scope="module")
def faulty_app():
    return create_app(Faulty())


# --- routes ----------------------------------------------------------------------------------------
def test_index_lists_name_version_and_apis(echo_app):
    body = call(echo_app, "GET", "/").json()
    assert body["name"] == "Echo" and body["version"] is None
    apis = {a["name"]: a for a in body["apis"]}
    assert apis["frame"] == {
        "name": "frame",
        "route": "/frame",
        "input": "DataframeInput",
        "batch": False,
        "doc": "",
    }
    assert set(apis) == set(Echo().apis)


@pytest.mark.parametrize(
    ("path", "kwargs", "expected"),
    [
        ("/json", {"json": {"a": [1, 2]}}, {"a": [1, 2]}),
        ("/text", {"content": "héllo", "headers": {"content-type": "text/plain; charset=utf-8"}}, "HÉLLO"),
        ("/file", {"files": {"upload": ("x.bin", b"12345", "application/octet-stream")}}, 5),
        ("/file", {"content": b"\x00\x01\x02", "headers": {"content-type": "application/octet-stream"}}, 3),
        ("/array", {"json": [1, 2, 3]}, [2, 4, 6]),
        ("/frame", {"json": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}, [3, 7]),
        ("/frame", {"json": {"a": [1, 3], "b": [2, 4]}}, [3, 7]),
        ("/frame", {"content": "a,b\n1,2\n3,4\n", "headers": {"content-type": "text/csv"}}, [3, 7]),
    ],
)
def test_each_adapter_parses_its_content_types(echo_app, path, kwargs, expected):
    response = call(echo_app, "POST", path, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_clipper_adapters_answer_in_the_query_frontend_shape(echo_app):
    one = call(echo_app, "POST", "/doubles", json={"input": [1.0, 2.5]}).json()
    assert set(one) == {"query_id", "output", "default"}
    assert one["output"] == 3.5 and one["default"] is False and isinstance(one["query_id"], int)
    batch = call(echo_app, "POST", "/strings", json={"input_batch": ["abc", "xy"]}).json()
    assert [p["output"] for p in batch["batch_predictions"]] == ["cba", "yx"]
    assert len({p["query_id"] for p in batch["batch_predictions"]}) == 2
    # a client written for Clipper posts to /<app>/predict, with or without the trailing slash
    for path in ("/ints/predict", "/ints/predict/"):
        response = call(echo_app, "POST", path, json={"input": [1, 2, 3]})
        assert response.status_code == 200 and response.json()["output"] == 6


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/json", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("/json", {"content": b"", "headers": {"content-type": "application/json"}}),
        ("/frame", {"json": [{"a": 1}]}),  # a column missing
        ("/frame", {"json": 3}),
        ("/frame", {"content": b"a,b\n\xff\xfe", "headers": {"content-type": "text/csv"}}),
        ("/array", {"json": [[1, 2], [3]]}),  # ragged
        ("/ints", {"json": {"input": [1.5, 2.0]}}),  # Clipper ints reject non-integers
        ("/doubles", {"json": {"inputs": [1.0]}}),  # neither input nor input_batch
        ("/bytes_len", {"json": {"input": "not base64!"}}),
    ],
)
def test_malformed_or_mistyped_input_is_a_400_with_error_and_detail(echo_app, path, kwargs):
    response = call(echo_app, "POST", path, **kwargs)
    assert response.status_code == 400, response.text
    body = response.json()
    if path in ("/ints", "/doubles", "/bytes_len"):
        # Clipper APIs answer as Clipper's query frontend does, and with bentolite's keys
        assert set(body) == {"error", "cause", "detail", "request_id"} and body["error"] == "Json error"
        assert body["cause"] == body["detail"] and body["cause"].startswith("Error parsing JSON: ")
    else:
        assert set(body) == {"error", "detail", "request_id"} and body["error"]


def test_unknown_route_is_404_and_wrong_method_is_405_in_json(echo_app):
    missing = call(echo_app, "POST", "/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not found"
    wrong = call(echo_app, "GET", "/json")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert "POST" in wrong.json()["detail"]
    assert call(echo_app, "POST", "/metrics").status_code == 405


def test_body_over_the_limit_is_413_declared_or_streamed(echo_app):
    declared = call(echo_app, "POST", "/text", content="x" * 2000, headers={"content-type": "text/plain"})
    assert declared.status_code == 413 and "1024 bytes" in declared.json()["error"]

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b"x" * 400

    streamed = call(echo_app, "POST", "/text", content=chunks(), headers={"content-type": "text/plain"})
    assert streamed.status_code == 413
    assert (
        call(
            echo_app, "POST", "/text", content="x" * 1000, headers={"content-type": "text/plain"}
        ).status_code
        == 200
    )


def test_unsupported_content_type_is_415(echo_app):
    response = call(echo_app, "POST", "/frame", content=b"<a/>", headers={"content-type": "application/xml"})
    assert response.status_code == 415
    assert "text/csv" in response.json()["error"]


def test_exception_in_user_code_is_a_500_with_a_logged_error_id(faulty_app, caplog):
    with caplog.at_level(logging.ERROR, logger="bentolite.server"):
        response = call(faulty_app, "POST", "/boom", json=1)
    assert response.status_code == 500
    body = response.json()
    assert "secret internals" not in response.text  # the message stays in the log
    assert body["detail"].startswith("RuntimeError")
    error_id = body["error_id"]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and "secret internals" in logged[0].exc_text
    # the server keeps serving
    assert call(faulty_app, "POST", "/ok", json=2).json() == 2


def test_unrenderable_result_is_500_and_a_bad_input_raised_by_user_code_is_400(faulty_app):
    unrenderable = call(faulty_app, "POST", "/unrenderable", json=1)
    assert unrenderable.status_code == 500 and "error_id" in unrenderable.json()
    rejected = call(faulty_app, "POST", "/rejects", json=-1)
    assert rejected.status_code == 400
    assert rejected.json() == {
        "error": "value must be positive",
        "detail": "got -1",
        "request_id": rejected.headers["x-request-id"],
    }


def test_timeout_is_a_503_and_the_server_keeps_serving():
    app = create_app(Slow(), timeout=0.2)
    response = call(app, "POST", "/sleep", json=1)
    assert response.status_code == 503 and "timeout" in response.json()["error"]
    assert call(app, "POST", "/async_sleep", json=1).status_code == 503
    assert call(app, "POST", "/sleep", json=0).status_code == 200


# --- how functions run ---------------------------------------------------------------------------
def test_sync_functions_run_in_the_thread_pool_and_the_loop_stays_free():
    app = create_app(Slow())

    async def scenario():
        slow = asyncio.create_task(_request(app, "POST", "/sleep", json=0.5))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        ping = await _request(app, "POST", "/ping", content="hi", headers={"content-type": "text/plain"})
        return time.perf_counter() - started, ping, await slow

    elapsed, ping, slow = asyncio.run(scenario())
    assert ping.json() == "pong" and elapsed < 0.3
    assert slow.json()["thread"].startswith("bentolite-api")


def test_async_functions_are_awaited():
    app = create_app(Slow())

    async def scenario():
        started = time.perf_counter()
        answers = await asyncio.gather(*[_request(app, "POST", "/async_sleep", json=0.2) for _ in range(5)])
        return time.perf_counter() - started, answers

    elapsed, answers = asyncio.run(scenario())
    assert all(a.json() == {"slept": 0.2} for a in answers)
    assert elapsed < 0.6  # concurrent on the event loop


# --- readiness -----------------------------------------------------------------------------------
def _bundle_app(tmp_path: Path, greeting: str = "Hello") -> tuple:
    path = save_bundle(Greeter().pack("greeting", greeting), target=tmp_path / "bundle", lock=False)
    service = load_bundle(path, load_artifacts=False)
    return create_app(service), path


def _wait_ready(app) -> httpx.Response:
    async def poll():
        for _ in range(100):
            response = await _request(app, "GET", "/readyz")
            if response.json()["status"] != "loading":
                return response
            await asyncio.sleep(0.02)
        raise AssertionError("never left 'loading'")

    return asyncio.run(poll())


def test_ready_only_after_artifacts_are_loaded(tmp_path, monkeypatch):
    app, _ = _bundle_app(tmp_path)
    state = app.state.bentolite
    assert state.status == "loading"
    monkeypatch.setattr(state, "start_loading", lambda: None)  # hold loading back, look meanwhile
    readyz = call(app, "GET", "/readyz")
    assert readyz.status_code == 503 and readyz.headers["Retry-After"] == "1"
    assert call(app, "GET", "/healthz").json() == {"status": "loading", "detail": None}
    assert call(app, "GET", "/livez").status_code == 200
    api = call(app, "POST", "/greet", content="A", headers={"content-type": "text/plain"})
    assert api.status_code == 503 and api.headers["Retry-After"] == "1"
    monkeypatch.undo()
    assert _wait_ready(app).status_code == 200
    assert call(app, "GET", "/livez").status_code == 200
    assert call(app, "GET", "/healthz").json() == {"status": "ok", "detail": None}
    assert (
        call(app, "POST", "/greet", content="Ann", headers={"content-type": "text/plain"}).json()
        == "Hello, Ann"
    )


def test_the_lifespan_loads_artifacts_at_startup(tmp_path):
    app, _ = _bundle_app(tmp_path)

    async def scenario():
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if app.state.bentolite.status == "ok":
                    return True
                await asyncio.sleep(0.02)
        return False

    assert asyncio.run(scenario())


def test_artifacts_that_fail_to_load_keep_the_server_unready(tmp_path, caplog):
    app, path = _bundle_app(tmp_path)
    (path / "artifacts" / "greeting.txt").unlink()
    with caplog.at_level(logging.ERROR, logger="bentolite.server"):
        response = _wait_ready(app)
    assert response.status_code == 503 and response.json()["status"] == "failed"
    assert response.headers["Retry-After"] == "30"  # only a restart helps
    assert "greeting" in response.json()["detail"]
    assert call(app, "GET", "/livez").status_code == 503
    assert call(app, "GET", "/healthz").status_code == 503
    api = call(app, "POST", "/greet", content="x", headers={"content-type": "text/plain"})
    assert api.status_code == 503 and "failed to load" in api.json()["error"]
    assert api.headers["Retry-After"] == "30"


def test_a_packed_service_is_ready_at_once():
    app = create_app(Greeter().pack("greeting", "Hi"))
    assert call(app, "GET", "/readyz").json() == {"status": "ok", "detail": None}


def test_create_app_refuses_unpacked_artifacts_and_bad_options():
    with pytest.raises(ArtifactError, match="greeting"):
        create_app(Greeter())
    with pytest.raises(InvalidArgument):
        create_app(Echo(), timeout=0)
    with pytest.raises(InvalidArgument):
        create_app(Echo(), max_body_size="lots")


# --- metrics, OpenAPI, docs ----------------------------------------------------------------------
def test_metrics_count_requests_by_api_and_status_in_a_registry_per_app():
    app = create_app(Faulty())
    call(app, "POST", "/ok", json=1)
    call(app, "POST", "/ok", json=2)
    call(app, "POST", "/ok", content=b"{", headers={"content-type": "application/json"})
    response = call(app, "GET", "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'bentolite_requests_total{api="ok",status="200"} 2.0' in text
    assert 'bentolite_requests_total{api="ok",status="400"} 1.0' in text
    assert 'bentolite_request_duration_seconds_count{api="ok"} 3.0' in text
    assert 'bentolite_requests_in_flight{api="ok"} 0.0' in text
    assert "bentolite_batch_size_bucket" in text
    batched = {spec.name for spec in Faulty().apis.values() if spec.batch}
    for api in Faulty().apis:  # batch series only for the APIs that batch
        assert (f'bentolite_batch_size_count{{api="{api}"}}' in text) == (api in batched)
        assert (f'bentolite_batch_limit{{api="{api}"}}' in text) == (api in batched)
    assert batched and "_created" not in text
    assert 'bentolite_service_info{name="Faulty",version=""} 1.0' in text
    # another app has its own registry, and the global one is untouched
    assert 'api="ok",status="200"' not in call(create_app(Faulty()), "GET", "/metrics").text

    from prometheus_client import REGISTRY, generate_latest

    assert b"bentolite_requests" not in generate_latest(REGISTRY)


def test_openapi_document_comes_from_the_apis_and_adapters(echo_app):
    spec = call(echo_app, "GET", "/docs.json").json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Echo"
    frame = spec["paths"]["/frame"]["post"]
    assert set(frame["requestBody"]["content"]) == {"application/json", "text/csv"}
    rows = frame["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]["items"]["oneOf"]
    assert rows[0]["required"] == ["a", "b"] and rows[1]["minItems"] == rows[1]["maxItems"] == 2
    assert {"200", "400", "413", "415", "500", "503"} <= set(frame["responses"])
    assert "multipart/form-data" in spec["paths"]["/file"]["post"]["requestBody"]["content"]
    clipper = spec["paths"]["/doubles"]["post"]
    assert "input_batch" in clipper["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "/doubles/predict" in spec["paths"]
    for route in ("/", "/healthz", "/livez", "/readyz", "/metrics"):
        assert "get" in spec["paths"][route]
    assert spec["components"]["responses"]["E400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_openapi_of_a_batched_api_and_a_documented_one():
    spec = openapi_spec(IrisClassifier())
    assert spec["info"]["version"] == "dev"
    assert spec["paths"]["/predict"]["post"]["operationId"] == "predict"
    double = openapi_spec(Batched())["paths"]["/double"]["post"]
    assert double["x-bentolite-batch"] == {"max_batch_size": 16, "max_latency_ms": 2000.0}
    assert "latency budget" in double["description"]


def test_swagger_ui_is_served_from_the_installed_package(echo_app):
    redirect = call(echo_app, "GET", "/docs", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "docs/"
    page = call(echo_app, "GET", "/docs/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "../docs.json" in page.text and "SwaggerUIBundle" in page.text
    assert "//" not in "".join(line for line in page.text.splitlines() if "src=" in line or "href=" in line)
    bundle = call(echo_app, "GET", "/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert bundle.content == (swagger_ui_dir() / "swagger-ui-bundle.js").read_bytes()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("32MB", 32 * 1024**2),
        ("512kb", 512 * 1024),
        ("1GiB", 1024**3),
        ("100", 100),
        ("1.5M", 1572864),
        (7, 7),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "0", "12 parsecs"])
def test_parse_size_rejects_nonsense(text):
    with pytest.raises(InvalidArgument):
        parse_size(text)
