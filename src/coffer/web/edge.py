"""Where the web app meets the framework: the verified form every post takes, the HTML
answers to errors under /app (the API keeps its JSON envelope), and mounting it all."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from coffer.errors import AppError, status_phrase
from coffer.settings import Settings
from coffer.web import csrf
from coffer.web.forms import Form, FormInvalid, read_form
from coffer.web.messages import error_message, message_for
from coffer.web.rendering import render
from coffer.web.session import SignInRequired, StepUpRedirect, end_web_session, sign_in_url

WEB_PREFIX = "/app"


async def verified_form(request: Request) -> Form:
    """The posted form, once its CSRF token checks out (403 page otherwise)."""
    form = await read_form(request)
    csrf.check(request, request.app.state.settings, form)
    return form


VerifiedForm = Annotated[Form, Depends(verified_form)]


def redirect(url: str) -> RedirectResponse:
    """See Other: after a post, the browser fetches the next page with a GET."""
    return RedirectResponse(url, status_code=303)


def _is_web(request: Request) -> bool:
    path = request.url.path
    return path == WEB_PREFIX or path.startswith(WEB_PREFIX + "/")


async def _sign_in_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)  # noqa: S101 - registered for it only
    settings: Settings = request.app.state.settings
    response = redirect(sign_in_url(error.notice, error.next_path))
    end_web_session(response, request, settings)
    return response


async def _delegate(
    handler: Callable[[Request, Exception], Response | Awaitable[Response]],
    request: Request,
    error: Exception,
) -> Response:
    answer = handler(request, error)
    return await answer if inspect.isawaitable(answer) else answer


async def _step_up_redirect(request: Request, error: Exception) -> Response:
    assert isinstance(error, StepUpRedirect)  # noqa: S101 - registered for it only
    return redirect(f"/app/step-up?{urlencode({'next': error.back})}")


def _error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(
        request,
        "error.html",
        {"title": title, "message": message},
        status_code=status_code,
    )


def install_error_pages(app: FastAPI) -> None:
    """HTML error pages for /app; the API's own handlers answer everywhere else."""
    api_handlers = {
        kind: app.exception_handlers[kind]
        for kind in (AppError, StarletteHTTPException, RequestValidationError)
    }

    async def app_error(request: Request, error: Exception) -> Response:
        if not _is_web(request):
            return await _delegate(api_handlers[AppError], request, error)
        assert isinstance(error, AppError)  # noqa: S101
        return _error_page(request, error.http_status, "Something went wrong", error_message(error))

    async def http_error(request: Request, error: Exception) -> Response:
        if not _is_web(request):
            return await _delegate(api_handlers[StarletteHTTPException], request, error)
        assert isinstance(error, StarletteHTTPException)  # noqa: S101
        message = {
            404: message_for("not_found", "Not found"),
            429: message_for("rate_limited", "Too many requests"),
        }.get(error.status_code, status_phrase(error.status_code))
        page = _error_page(request, error.status_code, status_phrase(error.status_code), message)
        if error.headers:
            page.headers.update(error.headers)
        return page

    async def validation_error(request: Request, error: Exception) -> Response:
        if not _is_web(request):
            return await _delegate(api_handlers[RequestValidationError], request, error)
        return _error_page(request, 422, "Not valid", FormInvalid.default_message)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(StepUpRedirect, _step_up_redirect)
