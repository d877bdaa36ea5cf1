"""Opaque keyset cursors: the position after the last row of a page, never an offset, so a
page costs the same at any depth and rows arriving meanwhile never shift later pages."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from coffer.errors import AppError

MAX_CURSOR_LENGTH = 512


class InvalidCursor(AppError):
    code = "invalid_cursor"
    http_status = 422
    default_message = "The cursor is not valid; start again without one"


def encode_cursor(*position: str | int) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type[str] | type[int]) -> tuple[Any, ...]:
    """The position inside `cursor`, checked to be exactly these types; else `InvalidCursor`."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor() from exc
    if (
        not isinstance(position, list)
        or len(position) != len(types)
        or not all(type(value) is kind for value, kind in zip(position, types, strict=True))
        # Ids are BIGINT: anything outside would fail in the database, not here.
        or any(type(value) is int and not 0 < value < 2**63 for value in position)
    ):
        raise InvalidCursor()
    return tuple(position)


def decode_moment_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """A `(created_at, id)` position, as `encode_cursor(created_at.isoformat(), str(id))` wrote
    it: an aware time (a naive one could not be compared with stored UTC times) and a UUID."""
    created_at, row_id = decode_cursor(cursor, str, str)
    try:
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise InvalidCursor()
        return moment.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor() from exc
