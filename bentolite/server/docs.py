"""Swagger UI at ``/docs``, served from the installed ``swagger-ui-bundle`` package (no CDN, so
it works offline).

``/docs`` redirects to ``/docs/``; the page is the package's own ``index.j2`` rendered with the
spec URL ``../docs.json``, and its assets are the package's files. All links are relative, so
the UI also works behind a proxy that mounts the server under a path prefix.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles


def swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def docs_routes(spec_url: str = "../docs.json") -> list[BaseRoute]:
    """The routes of ``/docs``: the redirect, the page and its assets."""
    assets = swagger_ui_dir()
    page: list[bytes] = []

    async def redirect(request: Request) -> Response:
        return RedirectResponse("docs/", status_code=307)

    async def index(request: Request) -> Response:
        if not page:
            import jinja2

            env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(assets)), autoescape=True)
            page.append(env.get_template("index.j2").render(openapi_spec_url=spec_url).encode("utf-8"))
        return HTMLResponse(page[0])

    return [
        Route("/docs", redirect, methods=["GET"]),
        Mount(
            "/docs",
            routes=[
                Route("/", index, methods=["GET"]),
                Mount("/", app=StaticFiles(directory=str(assets)), name="swagger-ui"),
            ],
        ),
    ]
