"""The bentofile's ``serve.cors_origins``: read and checked (bentolite/bentofile.py), recorded in
the bundle's bentolite.yaml (bentolite/bundle_meta.py) and used by ``bentolite serve BUNDLE``
when no ``--cors-origin`` nor ``BENTOLITE_CORS_ORIGINS`` is given (bentolite/server/runner.py),
on a real server and in the HTTP image (the session's iris image, on the real engine)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import attrs
import pytest
import requests
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import Server

from bentolite.bentofile import BuildConfig, ServeOptions
from bentolite.builder import build
from bentolite.bundle_meta import BundleMeta
from bentolite.cli.main import cli
from bentolite.exceptions import ConfigError

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.org"

ECHO = '''
from bentolite import Service, api
from bentolite.adapters import JsonInput


class Echo(Service):
    """Answers what it is sent."""

    @api(input=JsonInput())
    def echo(self, value):
        return value
'''


def write_build_dir(directory: Path, bentofile: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "echo_service.py").write_text(ECHO)
    (directory / "bentofile.yaml").write_text(textwrap.dedent(bentofile))
    return directory


def preflight(server: Server, origin: str) -> requests.Response:
    return requests.options(
        f"{server.base}/echo",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
        timeout=10,
    )


# --- the bentofile key ---------------------------------------------------------------------------
def test_the_key_is_read_checked_and_rendered_back():
    config = BuildConfig.from_yaml(
        f'service: "a.py:B"\nserve:\n  cors_origins:\n    - {ALLOWED}\n    - "*"\n', source="bf.yaml"
    )
    assert config.serve == ServeOptions(cors_origins=(ALLOWED, "*"))
    assert config.to_dict()["serve"] == {"cors_origins": [ALLOWED, "*"]}
    assert BuildConfig.from_yaml(config.to_yaml()) == config
    assert "serve" not in BuildConfig.from_yaml('service: "a.py:B"\nserve:\n').to_dict()


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        (
            "serve:\n  cors_origin: [x]\n",
            3,
            "unknown key 'serve.cors_origin'; did you mean 'serve.cors_origins'?",
        ),
        ("sevre:\n  cors_origins: []\n", 2, "unknown key 'sevre'; did you mean 'serve'?"),
        ("serve:\n  cors_origins: https://a.example\n", 3, "serve.cors_origins: expected a list of strings"),
        (
            "serve:\n  cors_origins:\n    - https://a.example/app\n",
            4,
            "serve.cors_origins[0]: 'https://a.example/app' is not an origin",
        ),
        ("serve: [a]\n", 2, "serve: expected a mapping of keys for serve"),
    ],
)
def test_mistakes_in_the_key_are_one_line_errors_with_the_line(body, line, fragment):
    with pytest.raises(ConfigError) as caught:
        BuildConfig.from_yaml(f'service: "a.py:B"\n{body}', source="bf.yaml")
    message = str(caught.value)
    assert message.startswith(f"bf.yaml:{line}: ") and fragment in message and "\n" not in message


def test_a_typo_stops_bentolite_build_with_exit_2_and_one_line(tmp_path, store_home):
    bentofile = f'service: "echo_service.py:Echo"\nserve:\n  cors_orgins: [{ALLOWED}]\n'
    build_dir = write_build_dir(tmp_path / "typo", bentofile)
    result = CliRunner().invoke(cli, ["build", "-f", str(build_dir / "bentofile.yaml")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bentofile.yaml:3: unknown key 'serve.cors_orgins'" in lines[0]
    assert "did you mean 'serve.cors_origins'?" in lines[0] and "Traceback" not in result.output
    assert not list(store_home.glob("**/bentolite.yaml"))  # nothing was saved


# --- the record in the bundle --------------------------------------------------------------------
_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,6}){1,2}", fullmatch=True)
_origins = st.one_of(
    st.just("*"),
    st.builds(
        lambda s, h, p: f"{s}://{h}{p}",
        st.sampled_from(["http", "https"]),
        _hosts,
        st.sampled_from(["", ":8080", ":443"]),
    ),
)


@settings(deadline=None, max_examples=40)
@given(st.lists(_origins, max_size=4))
def test_the_record_round_trips_and_old_bundles_still_load(origins):
    meta = BundleMeta(
        name="Echo",
        version="1",
        created_at="2026-12-01T00:00:00.000000Z",
        bentolite_version="0",
        python_version="3.11.0",
        module="echo_service",
        service_class="Echo",
        cors_origins=tuple(origins),
    )
    text = meta.to_yaml()
    assert BundleMeta.from_yaml(text) == meta
    ServeOptions(cors_origins=origins)  # every generated origin is one the bentofile accepts
    data = yaml.safe_load(text)
    assert ("serve" in data) == bool(origins)
    data.pop("serve", None)  # a bundle written before the key existed
    assert BundleMeta.from_dict(data).cors_origins == ()


def test_a_malformed_record_is_a_bundle_error():
    from bentolite.exceptions import BundleError

    data = {
        "name": "Echo",
        "version": "1",
        "created_at": "x",
        "bentolite_version": "0",
        "python_version": "3.11.0",
        "service": {"module": "m", "class": "C"},
        "serve": ["not", "a", "mapping"],
    }
    with pytest.raises(BundleError, match="bentolite.yaml: missing or invalid field"):
        BundleMeta.from_dict(data)


# --- a real server -------------------------------------------------------------------------------
@pytest.fixture
def cors_bundle(tmp_path) -> Path:
    build_dir = write_build_dir(
        tmp_path / "echo",
        f'service: "echo_service.py:Echo"\nserve:\n  cors_origins:\n    - {ALLOWED}\n',
    )
    path = build(build_dir / "bentofile.yaml")
    assert yaml.safe_load((path / "bentolite.yaml").read_text())["serve"] == {"cors_origins": [ALLOWED]}
    return path


def test_a_served_bundle_answers_preflights_from_its_recorded_origins(cors_bundle, tmp_path, store_home):
    server = Server(str(cors_bundle), home=store_home, log=tmp_path / "log")
    try:
        allowed = preflight(server, ALLOWED)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in allowed.headers["access-control-allow-methods"]
        refused = preflight(server, OTHER)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        answer = server.post("/echo", json=[1, 2], headers={"origin": ALLOWED})
        assert answer.json() == [1, 2] and answer.headers["access-control-allow-origin"] == ALLOWED
        other = server.post("/echo", json=1, headers={"origin": OTHER})
        assert other.json() == 1 and "access-control-allow-origin" not in other.headers
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("how", ["option", "env"])
def test_the_option_and_the_variable_win_over_the_bundle(how, cors_bundle, tmp_path, store_home):
    options = ("--cors-origin", OTHER) if how == "option" else ()
    env = {"BENTOLITE_CORS_ORIGINS": OTHER} if how == "env" else {}
    if how == "option":  # the option wins over the variable too
        env = {"BENTOLITE_CORS_ORIGINS": "https://third.example"}
    server = Server(str(cors_bundle), *options, home=store_home, log=tmp_path / "log", env=env)
    try:
        assert preflight(server, OTHER).headers["access-control-allow-origin"] == OTHER
        assert preflight(server, ALLOWED).status_code == 400
        assert preflight(server, "https://third.example").status_code == 400
    finally:
        assert server.stop() == 0


def test_a_build_directory_served_as_it_is_reads_its_bentofile(tmp_path):
    from bentolite.server.targets import load_target, recorded_cors_origins

    build_dir = write_build_dir(
        tmp_path / "dev", f'service: "echo_service.py:Echo"\nserve: {{cors_origins: [{ALLOWED}]}}\n'
    )
    service = load_target(str(build_dir))
    assert service.bundle_path is None
    assert recorded_cors_origins(service, str(build_dir)) == (ALLOWED,)
    assert recorded_cors_origins(service, "echo_service.py:Echo") == ()


# --- the HTTP image ------------------------------------------------------------------------------
def _bundle_meta_archive(meta: BundleMeta) -> bytes:
    """A tar holding ``bentolite.yaml`` with ``meta``, for ``put_archive`` into ``/bundle``."""
    import io
    import tarfile

    data = meta.to_yaml().encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("bentolite.yaml")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.docker
def test_the_http_image_answers_preflights_from_the_bundles_origins(docker_client, iris_http_image):
    """The session's iris image, its /bundle's bentolite.yaml given ``serve.cors_origins`` before
    the container starts: the image's own entrypoint serves it with those origins."""
    import time

    image_meta = docker_client.containers.run(
        iris_http_image, ["cat", "/bundle/bentolite.yaml"], remove=True
    ).decode()
    meta = attrs.evolve(BundleMeta.from_yaml(image_meta), cors_origins=(ALLOWED,))
    container = docker_client.containers.create(iris_http_image, ports={"3000/tcp": ("127.0.0.1", None)})
    try:
        assert container.put_archive("/bundle", _bundle_meta_archive(meta))
        container.start()
        deadline, base = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            container.reload()
            assert container.status != "exited", container.logs().decode(errors="replace")[-3000:]
            published = (container.ports or {}).get("3000/tcp")
            if published:
                base = f"http://127.0.0.1:{published[0]['HostPort']}"
                try:
                    if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"not ready\n{container.logs().decode(errors='replace')[-3000:]}")
        headers = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
        allowed = requests.options(f"{base}/predict", headers={"origin": ALLOWED, **headers}, timeout=10)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED
        refused = requests.options(f"{base}/predict", headers={"origin": OTHER, **headers}, timeout=10)
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    finally:
        container.remove(force=True)
