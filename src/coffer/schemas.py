"""The project's base schema and the shared field types of the HTTP API.

Amounts leave as strings with exactly the currency's decimals and arrive as a JSON string or
an exact number (the request body is parsed with `Decimal` for every non-integer, see
`coffer.http.ExactJSONRoute`); times are RFC 3339 UTC with a `Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from coffer.kit.money import InvalidAmount

T = TypeVar("T")


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class RequestSchema(Schema):
    """Request bodies refuse unknown fields, so a misspelt option is an error, not a no-op,
    and NUL characters anywhere (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if _contains_nul(data):
            raise ValueError("Text must not contain NUL characters")
        return data


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json-unless-none")
]


MAX_AMOUNT_MAGNITUDE = 20
"""Decimal exponents beyond this are refused before anything converts the value: turning
`1E+4000000` into an int would hold the event loop for seconds."""


def _exact_amount(value: Any) -> str | int | Decimal:
    # Only shapes that are exact survive, passed through untouched (a plain validator: no
    # union coercion); the currency's rules are applied by the service, which knows the
    # currency (coffer.kit.money.parse_amount).
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidAmount("The amount must be a number or a numeric string")
    if isinstance(value, Decimal) and (
        not value.is_finite() or abs(value.adjusted()) > MAX_AMOUNT_MAGNITUDE
    ):
        raise InvalidAmount("The amount is out of range")
    return value


AmountInput = Annotated[
    str | int | Decimal,
    PlainValidator(_exact_amount),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?$"}, {"type": "number"}],
            "description": 'A positive amount in major units, e.g. "250.50" (string preferred).',
            "examples": ["250.50"],
        }
    ),
]
"""A client's amount as sent, checked against the currency by the service."""

AmountOutput = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Exactly the currency's decimals",
            "examples": ["250.50"],
        }
    ),
]


class Envelope(Schema, Generic[T]):
    """Every JSON response: `status`, `status_code`, `message` and the payload in `data`."""

    status: Literal["success"] = "success"
    status_code: int = 200
    message: str = "OK"
    data: T


class ErrorBody(Schema):
    code: str
    details: Any = None


class ErrorEnvelope(Schema):
    status: Literal["error"] = "error"
    status_code: int
    message: str
    data: None = None
    error: ErrorBody
