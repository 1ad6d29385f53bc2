"""``bentolite serve`` (bentolite/cli/serve.py), the runner and the targets it accepts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_services import Greeter, Slow

import bentolite
from bentolite.bundle import save_bundle
from bentolite.cli.main import cli
from bentolite.exceptions import ArtifactError, InvalidArgument, NotFound, ServiceError
from bentolite.server import runner, supervisor
from bentolite.server.limits import Limits
from bentolite.server.targets import load_target, normalize_target

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def recorded(monkeypatch):
    """Replace uvicorn.run and the supervisor: record what serve() would run."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    monkeypatch.setattr(runner, "check_port", lambda host, port: None)  # 3000 may be taken here

    def supervise(self):
        calls.append((self, self.options))
        return 0

    monkeypatch.setattr(supervisor.Supervisor, "run", supervise)
    return calls


def test_help_lists_every_option():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--workers",
        "--reload",
        "--max-body-size",
        "--timeout",
        "--max-concurrency",
        "--max-inflight-bytes",
        "--max-parts",
        "--max-part-header-size",
        "--max-header-size",
        "--header-timeout",
        "--log-level",
    ):
        assert option in result.output


def test_defaults_reach_the_runner(monkeypatch):
    seen = {}
    monkeypatch.setattr(runner, "serve", lambda target, **options: seen.update(target=target, **options))
    result = CliRunner().invoke(cli, ["serve", "Name:1"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "target": "Name:1",
        "host": "127.0.0.1",
        "port": 3000,
        "workers": 1,
        "reload": False,
        "timeout": 60.0,
        "log_level": "info",
        "limits": Limits(),
        "log_format": "text",
        "access_log": True,
        "log_probes": False,
        "cors_origins": None,
        "docs": True,
    }


def test_bad_options_exit_2_with_a_message():
    for args, text in (
        (["--max-body-size", "huge"], "size"),
        (["--workers", "0"], "workers"),
        (["--port", "70000"], "port"),
        (["--timeout", "0"], "timeout"),
        (["--log-level", "loud"], "log-level"),
    ):
        result = CliRunner().invoke(cli, ["serve", "Name", *args])
        assert result.exit_code == 2 and text in result.output


def test_a_target_that_does_not_exist_exits_1_before_binding(recorded):
    result = CliRunner().invoke(cli, ["serve", "NoSuchBundle:latest"])
    assert result.exit_code == 1 and "no bundle named 'NoSuchBundle'" in result.output
    assert not recorded


def test_a_class_with_unpacked_artifacts_is_refused(recorded):
    result = CliRunner().invoke(cli, ["serve", f"{FIXTURES / 'server_services.py'}:Greeter"])
    assert result.exit_code == 1 and "packed instance" in result.output
    assert not recorded


def test_one_worker_runs_under_the_supervisor(recorded):
    CliRunner().invoke(
        cli, ["serve", f"{FIXTURES / 'server_services.py'}:slow", "--host", "0.0.0.0", "--timeout", "5"]
    )
    ((chosen, options),) = recorded
    assert isinstance(chosen, supervisor.Supervisor) and chosen.workers == 1
    settings = runner.ServeSettings.from_json(chosen.settings_json)
    assert settings.timeout == 5 and settings.target.endswith("server_services.py:slow")
    assert options["host"] == "0.0.0.0" and options["port"] == 3000
    assert options["timeout_graceful_shutdown"] == 6
    assert options["log_config"]["loggers"]["bentolite"]["level"] == "INFO"


def test_several_workers_get_the_settings(recorded, monkeypatch):
    target = f"{FIXTURES / 'server_services.py'}:slow"
    runner.serve(target, workers=3, max_body_size="1KB", timeout=None)
    ((chosen, options),) = recorded
    assert chosen.workers == 3 and options["timeout_graceful_shutdown"] is None
    settings = runner.ServeSettings.from_json(chosen.settings_json)
    assert settings == runner.ServeSettings(
        normalize_target(target), timeout=None, limits=Limits(max_body_size=1024)
    )
    # what the reloader's worker does with the settings
    monkeypatch.setenv(runner.SETTINGS_ENV, settings.to_json())
    worker_app = runner.app_from_environment()
    assert worker_app.state.bentolite.max_body_size == 1024


def test_reload_watches_the_source_directory(recorded):
    runner.serve(f"{FIXTURES / 'server_services.py'}:slow", reload=True)
    ((_, options),) = recorded
    assert options["reload"] is True and options["reload_dirs"] == [str(FIXTURES)]


def test_runner_rejects_impossible_combinations():
    with pytest.raises(InvalidArgument, match="one worker"):
        runner.serve(Slow(), workers=2)
    with pytest.raises(InvalidArgument):
        runner.serve("x.py:svc", workers=2, reload=True)
    with pytest.raises(InvalidArgument):
        runner.serve("x.py:svc", log_level="loud")


def test_a_service_object_is_served_directly_through_the_public_api(recorded):
    service = Slow()
    bentolite.serve(service, port=0)
    ((app, options),) = recorded
    assert app.state.bentolite.service is service and options["port"] == 0


# --- targets -------------------------------------------------------------------------------------
def test_targets_tag_bundle_dir_and_module(tmp_path, store_home):
    path = save_bundle(Greeter().pack("greeting", "Hi"), version="v1", lock=False)
    for target in ("Greeter", "Greeter:latest", "Greeter:v1", str(path)):
        service = load_target(target)
        assert service.name == "Greeter" and service.version == "v1"
        assert service.artifacts.missing() == ["greeting"]  # the server loads them at startup
    assert load_target(f"{FIXTURES / 'server_services.py'}:greeter").artifacts.greeting == "Hello"
    assert type(load_target(f"{FIXTURES / 'server_services.py'}:Slow")).__name__ == "Slow"


def test_target_errors_name_the_fix(tmp_path):
    module = FIXTURES / "server_services.py"
    with pytest.raises(NotFound, match="no attribute 'nothing'"):
        load_target(f"{module}:nothing")
    with pytest.raises(ServiceError, match="not a bentolite Service"):
        load_target(f"{module}:time")
    with pytest.raises(ArtifactError, match="packed instance"):
        load_target(f"{module}:Greeter")
    with pytest.raises(InvalidArgument, match=":svc"):
        load_target(str(module))
    with pytest.raises(NotFound, match="neither a bundle"):
        load_target(str(tmp_path))
    with pytest.raises(NotFound):
        load_target(f"{tmp_path / 'missing.py'}:svc")
    broken = tmp_path / "broken_service.py"
    broken.write_text("raise ImportError('no such dependency')\n")
    with pytest.raises(ServiceError, match="no such dependency"):
        load_target(f"{broken}:svc")


def test_a_build_directory_serves_its_bentofile_service(tmp_path):
    (tmp_path / "hello_service.py").write_text(
        textwrap.dedent(
            """
            from bentolite import Service, api, artifacts
            from bentolite.adapters import StringInput
            from bentolite.artifacts import TextArtifact

            @artifacts([TextArtifact("greeting")])
            class Hello(Service):
                @api(input=StringInput())
                def greet(self, name):
                    return f"{self.artifacts.greeting} {name}"
            """
        )
    )
    (tmp_path / "greeting.txt").write_text("Hey")
    (tmp_path / "bentofile.yaml").write_text(
        "service: hello_service.py:Hello\nname: HelloService\nartifacts:\n  greeting: greeting.txt\n"
    )
    service = load_target(str(tmp_path))
    assert service.name == "HelloService" and service.greet("you") == "Hey you"
