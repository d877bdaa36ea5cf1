"""Form bodies (`application/x-www-form-urlencoded`), read without python-multipart: the app
takes no uploads, and the body cap (`coffer.edge.body_limit`) bounds what is read."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import Request
from pydantic import BaseModel, ValidationError

from coffer.errors import AppError

SchemaT = TypeVar("SchemaT", bound=BaseModel)

MAX_FIELDS = 64
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class NotAForm(AppError):
    code = "unsupported_media_type"
    http_status = 415
    default_message = "Send the form as application/x-www-form-urlencoded"


class Form:
    """The submitted fields; every value is text, missing fields read as ''."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str) -> str:
        values = self._fields.get(name)
        return values[0] if values else ""

    def optional(self, name: str) -> str | None:
        """The stripped value, or None when the field is blank."""
        value = self.get(name).strip()
        return value or None

    def getall(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise NotAForm()
    try:
        text = (await request.body()).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as error:
        raise NotAForm("The form could not be read") from error
    return Form(fields)


class FormInvalid(AppError):
    code = "validation_error"
    http_status = 422
    default_message = "Some fields are not valid. Check them and try again."


def parse(schema: type[SchemaT], fields: dict[str, Any]) -> SchemaT:
    """The form's fields through the API's own request schema, so both accept the same input;
    a refusal names the fields (never their values, which may be a password)."""
    try:
        return schema.model_validate(fields)
    except ValidationError as error:
        names = sorted({str(item["loc"][0]) for item in error.errors() if item["loc"]})
        message = "Check " + ", ".join(name.replace("_", " ") for name in names) if names else None
        raise FormInvalid(f"{message}." if message else None, details=names) from error
