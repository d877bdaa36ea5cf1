"""The OpenAPI document, completed: the two credentials as security schemes on the routes that
take them (Bearer only where API keys are refused), and on every error response the envelope's
codes that status can carry, with the edge's own refusals (413, 422 json_too_deep, 429)
declared on the routes they apply to."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from coffer.auth.principal import get_principal, require_admin, require_user
from coffer.errors import AppError
from coffer.notifications import events

BEARER, API_KEY = "bearerAuth", "apiKeyAuth"
SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A signed-in user's access token (POST /api/v1/auth/login).",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "A service's API key (POST /api/v1/keys/create), with its permissions.",
    },
}
EDGE_CODES = {
    401: ["not_authenticated", "invalid_token"],
    405: ["method_not_allowed"],
    413: ["payload_too_large"],
    422: ["validation_error", "json_too_deep"],
    429: ["rate_limited"],
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _subclasses(cls: type[AppError]) -> Iterator[type[AppError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def codes_by_status() -> dict[int, list[str]]:
    """Every code a status can carry: the AppError subclasses' and the edge's own."""
    found: dict[int, set[str]] = {status: set(codes) for status, codes in EDGE_CODES.items()}
    for error in _subclasses(AppError):
        found.setdefault(error.http_status, set()).add(error.code)
    return {status: sorted(codes) for status, codes in found.items()}


def _describe(responses: dict[str, Any], status: int, codes: dict[int, list[str]]) -> None:
    entry = responses.setdefault(str(status), {"content": {"application/json": {}}})
    entry.setdefault("content", {}).setdefault("application/json", {})["schema"] = _ERROR_REF
    listed = ", ".join(f"`{code}`" for code in codes.get(status, []))
    entry["description"] = (
        f"Error envelope; `error.code` is one of {listed}"
        if listed
        else (entry.get("description") or "Error envelope")
    )


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {}).update(events.openapi_schemas())
    info = document.setdefault("info", {})
    info["description"] = "\n\n".join(
        part for part in (info.get("description"), events.openapi_description()) if part
    )
    codes = codes_by_status()
    # Included routers are resolved lazily; this yields each route with its effective path.
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        for method in route.methods or ():
            operation = document["paths"][route.path_format].get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            if get_principal in calls:
                users_only = require_user in calls or require_admin in calls
                operation["security"] = (
                    [{BEARER: []}] if users_only else [{BEARER: []}, {API_KEY: []}]
                )
                for status in (401, 429):
                    responses.setdefault(str(status), {})
            if "requestBody" in operation:
                for status in (413, 422):
                    responses.setdefault(str(status), {})
            for status in list(responses):
                if status.isdigit() and int(status) >= 400:
                    _describe(responses, int(status), codes)
    app.openapi_schema = document
    return document
