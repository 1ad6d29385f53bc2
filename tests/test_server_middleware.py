"""Request ids, the access log, CORS and --disable-docs (bentolite/server/middleware.py,
bentolite/server/logs.py), in process and on a real server; the serve options' environment
variables and a port in use (bentolite/cli/serve.py, bentolite/server/runner.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import subprocess
from pathlib import Path

import click
import httpx
import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from live_server import CLI, Server
from server_services import Faulty

from bentolite import Service, api
from bentolite.adapters import JsonInput
from bentolite.cli.main import cli
from bentolite.server import create_app, runner
from bentolite.server.logs import JsonFormatter, RequestIdFilter

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GREETER = f"{FIXTURES / 'server_services.py'}:greeter"
SAFE_ID = re.compile(r"[A-Za-z0-9._~:@+=/-]{1,128}")
NEW_ID = re.compile(r"[0-9a-f]{32}")

logger = logging.getLogger("bentolite.tests.middleware")


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


class Chatty(Service):
    """An API that logs from the thread pool, to see the request id reach user code's lines."""

    @api(input=JsonInput())
    def say(self, value):
        logger.info("saying %s", value)
        return value


@pytest.fixture(scope="module")
def faulty_app():
    return create_app(Faulty())


# --- request ids ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200))
def test_a_safe_incoming_request_id_is_echoed_and_any_other_replaced(faulty_app, incoming):
    assume(incoming == incoming.strip())
    response = call(faulty_app, "POST", "/ok", content=b"{", headers={"x-request-id": incoming})
    assert response.status_code == 400
    returned = response.headers["x-request-id"]
    if SAFE_ID.fullmatch(incoming):
        assert returned == incoming
    else:
        assert NEW_ID.fullmatch(returned)
    assert response.json()["request_id"] == returned


def test_every_answer_carries_a_fresh_id_when_the_client_sends_none(faulty_app):
    answers = [
        call(faulty_app, "POST", "/ok", json=1),
        call(faulty_app, "GET", "/nope"),
        call(faulty_app, "GET", "/ok"),
        call(faulty_app, "POST", "/boom", json=1),
        call(faulty_app, "GET", "/readyz"),
    ]
    assert [a.status_code for a in answers] == [200, 404, 405, 500, 200]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(NEW_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    for answer in answers[1:4]:  # error bodies name the same id
        assert answer.json()["request_id"] == answer.headers["x-request-id"]


def test_the_request_id_is_on_access_lines_and_on_user_code_lines(caplog):
    app = create_app(Chatty())
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        response = call(app, "POST", "/say", json="hi", headers={"x-request-id": "req-42"})
        call(app, "GET", "/healthz")
    assert response.headers["x-request-id"] == "req-42"
    user_line = next(r for r in caplog.records if r.name == logger.name)
    assert user_line.request_id == "req-42" and user_line.getMessage() == "saying hi"
    (access,) = [r for r in caplog.records if r.name == "bentolite.access"]  # /healthz not logged
    assert access.request_id == "req-42"
    assert (access.method, access.path, access.status, access.size) == ("POST", "/say", 200, 4)
    assert 0 < access.duration_ms < 10_000
    assert '"POST /say HTTP/1.1" 200 4B' in access.getMessage()


def test_probes_are_logged_only_when_asked_and_the_access_log_can_be_off(caplog):
    with caplog.at_level(logging.INFO, logger="bentolite.access"):
        call(create_app(Chatty(), log_probes=True), "GET", "/readyz")
        call(create_app(Chatty(), access_log=False), "POST", "/say", json=1)
    assert [r.path for r in caplog.records if r.name == "bentolite.access"] == ["/readyz"]


def test_json_lines_carry_the_record_and_its_fields():
    record = logging.LogRecord("bentolite.access", logging.INFO, __file__, 1, "%s done", ("x",), None)
    record.request_id = "abc"
    record.status = 201
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "x done" and line["level"] == "info" and line["logger"] == "bentolite.access"
    assert line["request_id"] == "abc" and line["status"] == 201 and line["time"].endswith("Z")


# --- CORS and docs ---------------------------------------------------------------------------------
def test_cors_preflight_and_answers_follow_the_allowed_origins():
    app = create_app(Faulty(), cors_origins=["https://app.example"])
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-request-id",
    }
    allowed = call(app, "OPTIONS", "/ok", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    refused = call(app, "OPTIONS", "/ok", headers={**preflight, "origin": "https://evil.example"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    answer = call(app, "POST", "/ok", json=1, headers={"origin": "https://app.example"})
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    plain = call(create_app(Faulty()), "OPTIONS", "/ok", headers=preflight)
    assert plain.status_code == 405 and "access-control-allow-origin" not in plain.headers


def test_disable_docs_removes_the_schema_routes():
    app = create_app(Faulty(), docs=False)
    assert call(app, "GET", "/docs.json").status_code == 404
    assert call(app, "GET", "/docs/").status_code == 404
    assert call(app, "GET", "/").json()["docs"] is None
    assert call(create_app(Faulty()), "GET", "/docs.json").status_code == 200


# --- on a real server --------------------------------------------------------------------------------
def test_a_server_configured_by_environment_logs_json_and_answers_cors(tmp_path):
    env = {"BENTOLITE_CORS_ORIGINS": "https://a.example https://b.example", "BENTOLITE_LOG_FORMAT": "json"}
    server = Server(GREETER, home=tmp_path, log=tmp_path / "log", env=env, port_env="PORT")
    try:
        preflight = requests.options(
            f"{server.base}/greet",
            headers={"origin": "https://b.example", "access-control-request-method": "POST"},
            timeout=10,
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://b.example"
        ok = server.post("/greet", data="Ada", headers={"x-request-id": "trace-1"})
        assert ok.text == '"Hello, Ada"' and ok.headers["x-request-id"] == "trace-1"
        bad = server.post("/greet", data=b"\xff", headers={"content-type": "text/plain; charset=utf-8"})
        assert bad.status_code == 400
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "bentolite.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("OPTIONS", "/greet", 200),
        ("POST", "/greet", 200),
        ("POST", "/greet", 400),
    ]  # the readiness polls are not logged
    assert access[1]["request_id"] == "trace-1" and access[1]["size"] == len(ok.content)
    assert access[2]["request_id"] == bad.json()["request_id"] == bad.headers["x-request-id"]
    assert all(line["duration_ms"] > 0 for line in access)
    assert any(line["logger"] == "uvicorn.error" and "Started server" in line["message"] for line in lines)


def test_a_server_without_docs_logs_probes_in_text_when_asked(tmp_path):
    server = Server(GREETER, "--disable-docs", "--log-probes", home=tmp_path, log=tmp_path / "log")
    try:
        assert server.get("/docs.json").status_code == 404
        rid = server.get("/livez").headers["x-request-id"]
    finally:
        server.stop()
    text = server.log.read_text()
    assert re.search(rf'INFO bentolite.access \[{rid}\] 127.0.0.1:\d+ "GET /livez HTTP/1.1" 200 \d+B', text)
    assert '"GET /readyz HTTP/1.1" 200' in text and '"GET /docs.json HTTP/1.1" 404' in text


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "serve", GREETER, "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line == f"error: port {port} is in use on 127.0.0.1: stop the process listening there or " + (
        "choose another --port"
    )


# --- options by environment ----------------------------------------------------------------------------
@pytest.fixture
def seen(monkeypatch):
    options: dict = {}
    monkeypatch.setattr(runner, "serve", lambda target, **kw: options.update(kw))
    for name in ("PORT", "BENTOLITE_PORT"):
        monkeypatch.delenv(name, raising=False)
    return options


@pytest.mark.parametrize(
    ("env", "args", "port"),
    [
        ({}, [], 3000),
        ({"PORT": "8080"}, [], 8080),
        ({"PORT": "8080", "BENTOLITE_PORT": "9090"}, [], 9090),
        ({"PORT": "8080", "BENTOLITE_PORT": "9090"}, ["--port", "7070"], 7070),
    ],
)
def test_the_port_is_option_then_bentolite_port_then_port_then_3000(seen, env, args, port):
    result = CliRunner().invoke(cli, ["serve", "Name", *args], env=env)
    assert result.exit_code == 0, result.output
    assert seen["port"] == port


def test_every_serve_option_has_an_environment_variable_shown_in_help(seen):
    from bentolite.cli.serve import serve

    options = [p for p in serve.params if isinstance(p, click.Option) and p.name != "help"]
    help_text = " ".join(CliRunner().invoke(cli, ["serve", "--help"]).output.split())
    assert len(options) >= 10
    for option in options:
        assert option.envvar and option.show_envvar, option.name
        first = option.envvar if isinstance(option.envvar, str) else option.envvar[0]
        assert first == "BENTOLITE_" + option.name.upper()
        assert first in help_text
    env = {
        "BENTOLITE_HOST": "0.0.0.0",
        "BENTOLITE_WORKERS": "3",
        "BENTOLITE_CORS_ORIGINS": "https://a.example https://b.example",
        "BENTOLITE_DISABLE_DOCS": "1",
        "BENTOLITE_LOG_FORMAT": "json",
        "BENTOLITE_ACCESS_LOG": "false",
        "BENTOLITE_LOG_PROBES": "true",
        "BENTOLITE_TIMEOUT": "5",
    }
    result = CliRunner().invoke(cli, ["serve", "Name"], env=env)
    assert result.exit_code == 0, result.output
    assert seen["host"] == "0.0.0.0" and seen["workers"] == 3 and seen["timeout"] == 5.0
    assert seen["cors_origins"] == ("https://a.example", "https://b.example")
    assert seen["docs"] is False and seen["log_format"] == "json"
    assert seen["access_log"] is False and seen["log_probes"] is True
    bad = CliRunner().invoke(cli, ["serve", "Name"], env={"BENTOLITE_LOG_FORMAT": "xml"})
    assert bad.exit_code == 2 and "log-format" in bad.output


def test_api_posts_skip_the_router_yet_answer_like_any_route(faulty_app, monkeypatch):
    from bentolite.server.endpoint import ApiEndpoint

    stack = faulty_app.build_middleware_stack()
    assert set(stack.direct) == {f"/{spec.route}" for spec in Faulty().apis.values()}
    assert all(isinstance(app, ApiEndpoint) for app in stack.direct.values())
    assert not create_app(Faulty(), cors_origins=["*"]).build_middleware_stack().direct  # CORS sees all

    def broken(self, *args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ApiEndpoint, "_respond", broken)
    for app in (create_app(Faulty()), create_app(Faulty(), cors_origins=["*"])):  # direct, routed
        response = call(app, "POST", "/ok", json=1)
        assert response.status_code == 500 and response.json()["error"] == "internal server error"
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert response.headers["x-request-id"].count(",") == 0  # the header once


def test_the_readme_table_names_every_serve_option_and_its_variable():
    from bentolite.cli.serve import serve

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Options, logs, request ids and CORS", 1)[1].split("\n### ", 1)[0]
    for option in serve.params:
        if isinstance(option, click.Option) and option.name != "help":
            variables = [option.envvar] if isinstance(option.envvar, str) else option.envvar
            assert option.opts[0] in section, option.opts[0]
            for variable in variables:
                assert f"`{variable}`" in section or f"`{variable}`," in section, variable
