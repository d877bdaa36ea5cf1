"""HTTP plumbing shared by every route: request ids, the error envelope, the session."""

from __future__ import annotations

import os
import re
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.db import Database, error_chain, unavailable_reason
from coffer.errors import AppError, BodyRefused, envelope, status_phrase
from coffer.kit import exact_json
from coffer.kit.client import set_client
from coffer.schemas import ErrorEnvelope
from coffer.settings import Settings

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
UNAVAILABLE_RETRY_AFTER_SECONDS = 2
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        envelope(status_code=status_code, message=message, error_code=code, details=details),
        status_code=status_code,
        headers=headers,
    )


class RequestContextMiddleware:
    """Gives every request an id (the client's, if sane) in logs and the `X-Request-ID` header,
    and turns any unhandled exception into a 500 envelope without a stack trace anywhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = supplied if _CLIENT_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        client = scope.get("client")
        user_agent = dict(scope["headers"]).get(b"user-agent", b"").decode("latin-1")
        set_client(client[0] if client else None, user_agent or None)
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                # No route takes a NUL, and PostgreSQL text cannot hold one: refuse it here.
                refusal = error_response(400, "bad_request", "NUL characters are not allowed")
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as error:
            reason = unavailable_reason(error)
            if reason is None:
                log.error(
                    "http.unhandled_error",
                    error_type=type(error).__name__,
                    error_chain=error_chain(error),
                    raised_at=_raised_at(error),
                    method=scope.get("method"),
                    path=scope.get("path"),
                )
                response = error_response(500, "internal_error", "Internal server error")
            else:
                # An outage, not a bug: the client may retry (with its Idempotency-Key).
                log.warning(
                    "http.database_unavailable",
                    reason=reason,
                    method=scope.get("method"),
                    path=scope.get("path"),
                )
                database: Database | None = getattr(scope["app"].state, "database", None)
                if database is not None:
                    await database.reset_pool(reason)
                response = error_response(
                    503,
                    "service_unavailable",
                    "The database is not available; retry shortly",
                    headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
                )
            if not response_started:
                await response(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


async def _app_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)  # noqa: S101 - registered for AppError only
    if error.http_status >= 500:
        log.error("http.app_error", code=error.code, method=request.method, path=request.url.path)
    return error_response(error.http_status, error.code, error.message, error.details)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)  # noqa: S101
    if isinstance(error, BodyRefused):
        code = error.code
    else:
        code = _HTTP_ERROR_CODES.get(error.status_code, "http_error")
    message = error.detail if isinstance(error.detail, str) else status_phrase(error.status_code)
    return error_response(error.status_code, code, message, headers=error.headers)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101
    # Field paths and reasons only: the offending input is never echoed (it may be a password).
    details = [
        {
            "field": ".".join(str(part) for part in item["loc"]),
            "reason": item["msg"],
            "type": item["type"],
        }
        for item in error.errors()
    ]
    return error_response(422, "validation_error", "The request is not valid", details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class ExactJSONRequest(Request):
    """Parses JSON bodies with `coffer.kit.exact_json` (Decimal numbers, bounded depth)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = exact_json.loads(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """The route class of every API router (see ExactJSONRequest)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_handler


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a route's error statuses, all in the error envelope."""
    return {status: {"model": ErrorEnvelope} for status in statuses}


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _database_dependency(request: Request) -> Database:
    # Async, as every dependency on a hot path: FastAPI runs a plain `def` dependency in a
    # worker thread, a thread hop per request (issue 13).
    return get_database(request)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed once, when the route has returned. GET and HEAD
    requests read: on SQLite their transaction is deferred, so a read never queues behind
    (or blocks) writers. A GET route that writes takes `WriteSession`."""
    read_only = request.method in _READ_ONLY_METHODS
    async with get_database(request).transaction(read_only=read_only) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_database(request).transaction() as session:
        yield session


# Function scope: the commit happens before the response is sent, so a client never sees a
# success that a failed commit then undoes (request scope would commit after sending).
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(get_write_session, scope="function")]
"""The request's unit of work as a writing transaction whatever the method (GET routes that
write, like the OAuth callback). Do not combine with `Session` in one route."""
AppSettings = Annotated[Settings, Depends(get_app_settings)]
DatabaseDependency = Annotated[Database, Depends(_database_dependency)]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _raised_at(error: BaseException) -> str | None:
    """Where coffer's own code last was when the error rose (file:line function): enough to
    find the failing statement in the source, without the frames' values."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename.startswith(_PACKAGE_DIR)
    ]
    if not frames:
        return None
    last = frames[-1]
    return f"{os.path.relpath(last.filename, _PACKAGE_DIR)}:{last.lineno} {last.name}"
