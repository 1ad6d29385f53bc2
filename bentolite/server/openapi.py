"""``openapi_spec(service)``: the OpenAPI 3 document of a service's HTTP server.

Derived from the code, never written by hand: one ``POST`` operation per API whose request body
comes from the API's input adapter (``openapi_request``) and whose answer from its output adapter
(``openapi_response``; every error answer is the one shared ``Error`` schema), plus the server's
own routes. ``GET /docs.json`` serves it and ``/docs`` renders it.
"""

from __future__ import annotations

from typing import Any

from bentolite.service import ApiSpec, Service

OPENAPI_VERSION = "3.0.3"

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong"},
        "detail": {"type": "string", "nullable": True, "description": "more about it, when known"},
        "error_id": {
            "type": "string",
            "description": "only on 500: the id under which the server logged the traceback",
        },
        "request_id": {
            "type": "string",
            "description": "the request's id, as in the X-Request-ID response header and the log",
        },
    },
}

#: status -> description of the error responses every API can give
API_ERRORS = {
    "400": "Malformed input, or input of the wrong type",
    "413": "Request body larger than the server accepts",
    "415": "Content type the API's input does not accept",
    "500": "The API's function raised; the error id is in the server log",
    "503": "Not ready yet, over the latency budget, or past the server's timeout",
}

#: status -> description of the error responses some outputs add (``Output.error_statuses``)
OUTPUT_ERRORS = {
    "406": "The request's Accept header allows none of the types the API answers in",
}


def clipper_alias(spec: ApiSpec) -> str | None:
    """Route at which Clipper clients find a Clipper-adapter API (``/<route>/predict``)."""
    return f"{spec.route}/predict" if spec.clipper_input_type else None


def api_operation(spec: ApiSpec, operation_id: str) -> dict[str, Any]:
    doc = spec.doc.strip()
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": doc.splitlines()[0] if doc else spec.name,
        "description": _describe(spec),
        "tags": ["APIs"],
        "requestBody": request_body(spec),
        "responses": api_responses(spec),
        "x-bentolite-adapter": spec.adapter.to_spec(),
        "x-bentolite-output": spec.output.to_spec(),
    }
    if spec.batch:
        operation["x-bentolite-batch"] = {
            "max_batch_size": spec.max_batch_size,
            "max_latency_ms": spec.max_latency_ms,
        }
    return operation


def request_body(spec: ApiSpec) -> dict[str, Any]:
    """The ``requestBody`` of an API: its adapter's typed schema per media type, each with the
    example the adapter was given or derives from its declaration."""
    content = {media: dict(entry) for media, entry in spec.adapter.openapi_request().items()}
    for media, example in spec.adapter.openapi_examples().items():
        if media in content:
            content[media]["example"] = example
    return {"required": True, "content": content}


def api_responses(spec: ApiSpec) -> dict[str, Any]:
    """The ``responses`` of an API's operation: its output adapter's answer (with the output's
    example, when it was given one), then the errors every API can give and those its output adds
    (406 for an output that honours ``Accept``)."""
    statuses = sorted({*API_ERRORS, *spec.output.error_statuses})
    content = {media: dict(entry) for media, entry in spec.output.openapi_response().items()}
    for media, example in spec.output.openapi_examples().items():
        if media in content:
            content[media]["example"] = example
    return {
        "200": {"description": "The prediction", "content": content},
        **{status: {"$ref": f"#/components/responses/E{status}"} for status in statuses},
    }


def _describe(spec: ApiSpec) -> str:
    parts = [spec.doc.strip()] if spec.doc.strip() else []
    parts.append(f"Input: `{spec.adapter!r}`. Output: `{spec.output!r}`.")
    if spec.batch:
        parts.append(
            f"Concurrent requests are merged into calls of at most {spec.max_batch_size} items; "
            f"each request has a latency budget of {spec.max_latency_ms:g} ms (503 when it cannot be met)."
        )
    if spec.clipper_input_type:
        parts.append(
            f"Speaks Clipper's query frontend (input type `{spec.clipper_input_type}`); "
            f"also answers at `/{clipper_alias(spec)}`."
        )
    return "\n\n".join(parts)


def _plain_get(summary: str, operation_id: str, content: dict[str, Any], extra: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": summary, "content": content}}
    if extra:
        responses["503"] = {"description": extra, "content": content}
    operation = {"operationId": operation_id, "summary": summary, "tags": ["Server"], "responses": responses}
    return {"get": operation}


def openapi_spec(service: Service) -> dict[str, Any]:
    """The OpenAPI 3 document of the server ``create_app(service)`` builds."""
    paths: dict[str, Any] = {}
    routes = {spec.route for spec in service.apis.values()}
    for spec in service.apis.values():
        paths[f"/{spec.route}"] = {"post": api_operation(spec, spec.name)}
        alias = clipper_alias(spec)
        if alias and alias not in routes:
            paths[f"/{alias}"] = {"post": api_operation(spec, f"{spec.name}_clipper")}
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    paths["/"] = _plain_get(
        "The service's name, version and APIs",
        "index",
        {"application/json": {"schema": {"type": "object"}}},
    )
    paths["/livez"] = _plain_get("Liveness (200 while loading)", "livez", status, "Artifacts failed to load")
    paths["/healthz"] = _plain_get("Health (same as /readyz)", "healthz", status, "Not ready")
    paths["/readyz"] = _plain_get("Readiness: artifacts loaded", "readyz", status, "Not ready")
    paths["/metrics"] = _plain_get(
        "Prometheus metrics", "metrics", {"text/plain": {"schema": {"type": "string"}}}
    )
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": service.name,
            "version": service.version or "dev",
            "description": (type(service).__doc__ or "").strip(),
        },
        "tags": [
            {"name": "APIs", "description": "The service's prediction APIs"},
            {"name": "Server", "description": "Health, readiness and metrics"},
        ],
        "paths": paths,
        "components": {
            "schemas": {
                "Error": _ERROR_SCHEMA,
                "Status": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "loading", "failed"]},
                        "detail": {"type": "string", "nullable": True},
                    },
                },
            },
            "responses": {
                f"E{status}": {"description": description, "content": error_content}
                for status, description in sorted({**API_ERRORS, **OUTPUT_ERRORS}.items())
            },
        },
    }
