"""Render the Dockerfile that turns a bundle directory (the build context) into an image."""

from __future__ import annotations

from bentolite.bundle_meta import BundleMeta
from bentolite.templating import render

TARGETS = ("http", "clipper")
HTTP_PORT = 3000


def default_base_image(meta: BundleMeta) -> str:
    """``python:<major.minor>-slim`` for the bundle's Python, unless the service chose one."""
    chosen = meta.env.get("docker_base_image")
    if chosen:
        return str(chosen)
    major_minor = ".".join(str(meta.env.get("python_version") or meta.python_version).split(".")[:2])
    return f"python:{major_minor}-slim"


def render_dockerfile(
    meta: BundleMeta,
    target: str = "http",
    api: str | None = None,
    base_image: str | None = None,
) -> str:
    """The Dockerfile for ``target`` ("http" or "clipper"; the latter serves one ``api``)."""
    return render(
        f"Dockerfile.{target}.j2",
        meta=meta,
        api=api,
        base_image=base_image or default_base_image(meta),
        wheel=meta.env["bentolite_wheel"],
        system_packages=meta.env.get("system_packages") or [],
        setup_sh=meta.env.get("setup_sh"),
        port=HTTP_PORT,
    )
