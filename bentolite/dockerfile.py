"""Render the files that turn a bundle directory (the build context) into an image.

Two targets: ``http`` serves every API with ``bentolite serve``; ``clipper`` serves one API as a
Clipper model container. Each gets a ``Dockerfile``, an entrypoint script (``env/entrypoint.sh``)
and a ``.dockerignore``, all rendered from ``templates/``.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path

from bentolite import image_slim
from bentolite.bundle_meta import ApiRecord, BundleMeta
from bentolite.exceptions import InvalidArgument, NotFound
from bentolite.lock import logical_lines
from bentolite.templating import render

TARGETS = ("http", "clipper")
HTTP_PORT = 3000
#: where the entrypoint script sits in the build context
ENTRYPOINT_FILE = "env/entrypoint.sh"
#: where the image-trimming script (bentolite/image_slim.py) sits in the build context
SLIM_FILE = "env/slim.py"
#: where the bundle goes in an HTTP image
HTTP_BUNDLE_DIR = "/bundle"
#: what the bundle holds besides artifacts/, in the order the image copies it (folders first)
BUNDLE_DIRS = ("env", "src")
BUNDLE_FILES = ("bentolite.yaml", "README.md")
#: docker.env variables an install step may read; they are set before the installs, the rest after
INSTALL_ENV_RE = re.compile(
    r"^((?i:(http|https|ftp|all|no)_proxy)|PIP_\w+|UV_\w+|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE"
    r"|CURL_CA_BUNDLE|DEBIAN_FRONTEND)$"
)
#: uid and gid of the unprivileged user images run as
USER_ID = 10001

CLIPPER_MODEL_PATH = "/model"
CLIPPER_RPC_PORT = 7000
CLIPPER_METRICS_PORT = 1390
#: the file Clipper's health check and Kubernetes readiness probe look for
CLIPPER_READY_FILE = "/model_is_ready.check"
#: where the runtime writes it (the user cannot write to /); the file above links here
READY_DIR = "/run/bentolite"
#: the HTTP entrypoint writes the port it serves on here; the HEALTHCHECK reads it
PORT_FILE = f"{READY_DIR}/port"
#: the HTTP HEALTHCHECK: /healthz on the recorded port, else the one the variables name
HEALTHCHECK = (
    "import os, urllib.request; "
    f"f = '{PORT_FILE}'; "
    "p = open(f).read().strip() if os.path.exists(f) else "
    f"os.environ.get('BENTOLITE_PORT') or os.environ.get('PORT') or '{HTTP_PORT}'; "
    "urllib.request.urlopen('http://127.0.0.1:%s/healthz' % p, timeout=2)"
)


def default_base_image(meta: BundleMeta) -> str:
    """``python:<major.minor>-slim`` for the bundle's Python, unless the service chose one."""
    chosen = meta.env.get("docker_base_image")
    if chosen:
        return str(chosen)
    major_minor = ".".join(str(meta.env.get("python_version") or meta.python_version).split(".")[:2])
    return f"python:{major_minor}-slim"


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InvalidArgument(f"unknown image target {target!r}; choose one of: {', '.join(TARGETS)}")
    return target


def clipper_api(meta: BundleMeta, name: str | None) -> ApiRecord:
    """The API a Clipper image serves: ``name``, else the bundle's only API with a Clipper adapter."""
    clipper_apis = [a for a in meta.apis if a.clipper_input_type]
    listed = ", ".join(a.name for a in clipper_apis) or "none"
    if name:
        api = meta.api(name)
        if api is None:
            raise NotFound(f"{meta.tag} has no API {name!r}; its Clipper APIs: {listed}")
        if not api.clipper_input_type:
            raise InvalidArgument(
                f"API {name!r} of {meta.tag} takes {api.adapter.get('type')}, which Clipper cannot "
                f"call; choose an API with a Clipper* adapter (here: {listed})"
            )
        return api
    if len(clipper_apis) == 1:
        return clipper_apis[0]
    if not clipper_apis:
        raise InvalidArgument(
            f"{meta.tag} has no API with a Clipper adapter; declare one with "
            "@api(input=ClipperDoublesInput()) (or another Clipper* adapter)"
        )
    raise InvalidArgument(
        f"{meta.tag} has {len(clipper_apis)} Clipper APIs ({listed}); choose one with --api"
    )


def target_api(meta: BundleMeta, target: str, api: str | None) -> ApiRecord | None:
    """The API a ``target`` image serves: None for HTTP (it serves every API), one for Clipper."""
    check_target(target)
    if target == "clipper":
        return clipper_api(meta, api)
    if api:
        raise InvalidArgument("an HTTP image serves every API; --api applies only to --target clipper")
    return None


def quote(value: str) -> str:
    """``value`` as a double-quoted Dockerfile word (no variable expansion, one line)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + " ".join(escaped.splitlines()) + '"'


def image_labels(
    meta: BundleMeta,
    target: str,
    api: ApiRecord | None,
    base_image: str,
    requirements: list[str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The bundle's labels (bentofile ``labels:``) and ``extra_labels`` (``containerize
    --label``), then OCI annotations and bentolite's own: bundle tag, target, APIs, the lock."""
    labels = {**meta.labels, **dict(extra_labels or {})}
    labels |= {
        "org.opencontainers.image.title": meta.name,
        "org.opencontainers.image.version": meta.version,
        "org.opencontainers.image.created": meta.created_at,
    }
    if meta.description.strip():
        labels["org.opencontainers.image.description"] = meta.description.strip().splitlines()[0]
    labels |= {
        "org.opencontainers.image.base.name": base_image,
        "ai.bentolite.bundle": meta.tag,
        "ai.bentolite.target": target,
        "ai.bentolite.bentolite_version": meta.bentolite_version,
        "ai.bentolite.apis": json.dumps(
            [
                {
                    "name": a.name,
                    "route": a.route,
                    "input": a.adapter.get("type"),
                    **({"clipper_input_type": a.clipper_input_type} if a.clipper_input_type else {}),
                }
                for a in meta.apis
            ],
            separators=(",", ":"),
        ),
    }
    if api is not None:
        labels["ai.bentolite.api"] = api.name
        labels["ai.bentolite.clipper_input_type"] = str(api.clipper_input_type)
    if requirements is not None:
        labels["ai.bentolite.requirements"] = json.dumps(requirements, separators=(",", ":"))
    return labels


def install_env(docker_env: Mapping[str, object]) -> tuple[dict[str, str], dict[str, str]]:
    """``docker.env`` split into (what an install may read, the rest)."""
    before = {k: str(v) for k, v in docker_env.items() if INSTALL_ENV_RE.match(k)}
    return before, {k: str(v) for k, v in docker_env.items() if k not in before}


def _context(
    meta: BundleMeta,
    target: str,
    api: str | None,
    base_image: str | None,
    requirements: list[str] | None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, object]:
    record = target_api(meta, target, api)
    base = base_image or default_base_image(meta)
    wheel = str(meta.env["bentolite_wheel"])
    before, after = install_env(meta.env.get("docker_env") or {})
    labels = image_labels(meta, target, record, base, requirements, extra_labels)
    return {
        "meta": meta,
        "target": target,
        "api": record,
        "base_image": base,
        "wheel": wheel,
        "wheel_name": posixpath.basename(wheel),
        "system_packages": list(meta.env.get("system_packages") or []),
        "install_env": [(key, quote(value)) for key, value in before.items()],
        "runtime_env": [(key, quote(value)) for key, value in after.items()],
        "setup_sh": meta.env.get("setup_sh"),
        "locked": bool(meta.env.get("locked")),
        "compile_bytecode": bool(meta.env.get("compile_bytecode", True)),
        "slim": SLIM_FILE,
        "bundle_dir": CLIPPER_MODEL_PATH if target == "clipper" else HTTP_BUNDLE_DIR,
        "bundle_dirs": BUNDLE_DIRS,
        "bundle_files": BUNDLE_FILES,
        "healthcheck": HEALTHCHECK,
        "port_file": PORT_FILE,
        "run_dir": READY_DIR,
        "entrypoint": ENTRYPOINT_FILE,
        "uid": USER_ID,
        "port": HTTP_PORT,
        "model_path": CLIPPER_MODEL_PATH,
        "rpc_port": CLIPPER_RPC_PORT,
        "metrics_port": CLIPPER_METRICS_PORT,
        "clipper_ready_file": CLIPPER_READY_FILE,
        "ready_dir": READY_DIR,
        "ready_file": f"{READY_DIR}/{posixpath.basename(CLIPPER_READY_FILE)}",
        "labels": [(key, quote(value)) for key, value in labels.items()],
    }


def render_dockerfile(
    meta: BundleMeta,
    target: str = "http",
    api: str | None = None,
    base_image: str | None = None,
    requirements: list[str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> str:
    """The Dockerfile for ``target`` ("http", or "clipper" serving one ``api``).

    ``requirements`` (the bundle's locked requirement lines) become a label when given;
    ``extra_labels`` are image labels added to the bundle's own.
    """
    context = _context(meta, target, api, base_image, requirements, extra_labels)
    return render(f"Dockerfile.{target}.j2", **context)


def render_entrypoint(meta: BundleMeta, target: str = "http", api: str | None = None) -> str:
    return render("entrypoint.sh.j2", **_context(meta, target, api, None, None))


def render_dockerignore() -> str:
    return render("dockerignore.j2")


def read_requirements(bundle_dir: Path, meta: BundleMeta) -> list[str]:
    """The bundle's requirement lines, without pip options (an index URL may hold a password)
    or hashes."""
    path = Path(bundle_dir) / str(meta.env.get("requirements_txt") or "env/requirements.txt")
    if not path.is_file():
        return []
    lines = logical_lines(path.read_text(encoding="utf-8"))
    return [line.split(" --hash", 1)[0] for line in lines if not line.startswith("-")]


def write_docker_files(
    directory: Path,
    meta: BundleMeta,
    target: str = "http",
    api: str | None = None,
    base_image: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> None:
    """Write ``Dockerfile``, ``.dockerignore``, the entrypoint and ``env/slim.py`` into a bundle
    directory, which then builds the ``target`` image as it stands."""
    directory = Path(directory)
    requirements = read_requirements(directory, meta)
    (directory / "Dockerfile").write_text(
        render_dockerfile(meta, target, api, base_image, requirements, extra_labels), encoding="utf-8"
    )
    (directory / "artifacts").mkdir(exist_ok=True)  # the image copies it even when empty
    (directory / SLIM_FILE).parent.mkdir(parents=True, exist_ok=True)
    (directory / SLIM_FILE).write_text(Path(image_slim.__file__).read_text(encoding="utf-8"))
    (directory / ".dockerignore").write_text(render_dockerignore(), encoding="utf-8")
    entrypoint = directory / ENTRYPOINT_FILE
    entrypoint.parent.mkdir(parents=True, exist_ok=True)
    entrypoint.write_text(render_entrypoint(meta, target, api), encoding="utf-8")
    entrypoint.chmod(0o755)
