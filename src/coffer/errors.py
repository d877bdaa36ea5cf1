"""Domain errors and the one handler that turns every error into the JSON envelope.

Every error a client can see has a stable snake_case `code`. Services raise `AppError`
subclasses; the handlers below also wrap the framework's own 404/405/422 and any unexpected
exception (a 500 that never shows a stack trace).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

from starlette.exceptions import HTTPException


class AppError(Exception):
    """A failure the client is told about: a stable code, a message and an HTTP status."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class RecordedRefusal(AppError):
    """A refusal whose writes must outlive it: an idle session's revocation, a wrong code's
    counted attempt, a reused refresh token's revoked family.

    The one mechanism for these: every unit of work (`Database.transaction`, so every request
    and job) commits what was written before a `RecordedRefusal` and then lets it answer; any
    other error rolls everything back.
    """


class NotFound(AppError):
    code = "not_found"
    http_status = 404
    default_message = "Not found"


class ValidationFailed(AppError):
    code = "validation_error"
    http_status = 422
    default_message = "The request is not valid"


class Conflict(AppError):
    code = "conflict"
    http_status = 409
    default_message = "The request conflicts with the current state"


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    http_status = 503
    default_message = "Service unavailable"


class BodyRefused(HTTPException):
    """A request body refused while it is read (too large, nested too deep). An HTTPException,
    because FastAPI's body reader turns every other exception into a bare 400."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.code = code


def envelope(
    *,
    status_code: int,
    message: str,
    data: Any = None,
    error_code: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    """The response body every JSON route returns (DESIGN.md §6)."""
    body: dict[str, Any] = {
        "status": "error" if error_code else "success",
        "status_code": status_code,
        "message": message,
        "data": data,
    }
    if error_code:
        body["error"] = {"code": error_code, "details": details}
    return body


def status_phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"
