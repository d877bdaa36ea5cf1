"""Request and response bodies of the API key routes. A key's secret or hash never appears
here except in `IssuedApiKey.api_key`, in the one response that creates it."""

from __future__ import annotations

import uuid

from pydantic import Field

from coffer.apikeys.service import Expiry, KeyStatus
from coffer.auth.principal import Permission
from coffer.schemas import RequestSchema, Schema, UtcDateTime


class ApiKeyCreate(RequestSchema):
    name: str = Field(min_length=1, max_length=64)
    permissions: list[Permission] = Field(min_length=1, max_length=8)
    expiry: Expiry = Field(description="1H, 1D, 1M (one calendar month) or 1Y")


class ApiKeyRollover(RequestSchema):
    expired_key_id: uuid.UUID
    expiry: Expiry


class IssuedApiKey(Schema):
    id: uuid.UUID
    api_key: str | None = Field(
        description="The key: shown once, here. Null when this response is an idempotent "
        "replay (the key is never stored); revoke that key and create another."
    )
    name: str
    prefix: str
    permissions: list[Permission]
    created_at: UtcDateTime
    expires_at: UtcDateTime


class ApiKeyOut(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    permissions: list[Permission]
    status: KeyStatus
    created_at: UtcDateTime
    expires_at: UtcDateTime
    last_used_at: UtcDateTime | None


class ApiKeyPage(Schema):
    keys: list[ApiKeyOut]
    next_cursor: str | None
