"""Appending to and checking the hash-chained audit log.

Each row stores the SHA-256 of its own fields together with the previous row's hash; the chain
head row holds the newest hash. Editing a row changes its hash, deleting one breaks the next
row's link (or the head's), so `verify_chain` finds either. Appends happen in the caller's
transaction, so an action and its audit row commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.audit import repository
from coffer.kit.clock import utcnow
from coffer.kit.pagination import decode_cursor, encode_cursor
from coffer.models import AuditEvent

GENESIS_HASH = "0" * 64


class Action(StrEnum):
    SIGN_IN = "auth.sign_in"
    SIGN_IN_FAILURES = "auth.sign_in_failures"
    """A burst of failed sign-ins: the account's rate limit was reached."""
    PASSWORD_CHANGED = "auth.password_changed"  # noqa: S105 - an event name
    PASSWORD_RESET = "auth.password_reset"  # noqa: S105 - an event name
    TWO_FACTOR_ENABLED = "auth.two_factor_enabled"
    TWO_FACTOR_DISABLED = "auth.two_factor_disabled"
    TWO_FACTOR_RESET = "admin.two_factor_reset"
    API_KEY_CREATED = "apikeys.created"
    API_KEY_REVOKED = "apikeys.revoked"
    USER_ACTIVATED = "admin.user_activated"
    USER_DEACTIVATED = "admin.user_deactivated"
    ROLE_GRANTED = "admin.role_granted"
    ROLE_REVOKED = "admin.role_revoked"
    WALLET_FROZEN = "admin.wallet_frozen"
    WALLET_UNFROZEN = "admin.wallet_unfrozen"
    WALLET_CREDITED = "admin.wallet_credited"
    WALLET_DEBITED = "admin.wallet_debited"
    LIMIT_OVERRIDDEN = "admin.limit_overridden"
    JOB_RETRIED = "admin.job_retried"


SECURITY_ACTIONS = (
    Action.SIGN_IN,
    Action.SIGN_IN_FAILURES,
    Action.PASSWORD_CHANGED,
    Action.PASSWORD_RESET,
    Action.TWO_FACTOR_ENABLED,
    Action.TWO_FACTOR_DISABLED,
    Action.TWO_FACTOR_RESET,
    Action.API_KEY_CREATED,
    Action.API_KEY_REVOKED,
    Action.USER_ACTIVATED,
    Action.USER_DEACTIVATED,
    Action.ROLE_GRANTED,
    Action.ROLE_REVOKED,
)
"""What a user sees of their own audit trail at `GET /me/security-events`."""


def user_actor(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def _digest(previous_hash: str, values: dict[str, Any]) -> str:
    subject = values["subject_user_id"]
    document = [
        previous_hash,
        values["actor"],
        str(subject) if subject is not None else None,
        values["action"],
        values["reason"],
        values["request_id"],
        values["details"],
        values["created_at"].isoformat(),
    ]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def record(
    session: AsyncSession,
    action: Action,
    *,
    actor: str,
    subject_user_id: uuid.UUID | None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event to the chain in the caller's transaction; returns its id."""
    head = await repository.get_head_for_update(session)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    values: dict[str, Any] = {
        "actor": actor,
        "subject_user_id": subject_user_id,
        "action": str(action),
        "reason": reason,
        "request_id": request_id,
        # Round-tripped through JSON, so the hash covers exactly what the database returns.
        "details": json.loads(json.dumps(details or {}, sort_keys=True, default=str)),
        "created_at": utcnow(),
        "previous_hash": head.last_hash,
    }
    values["hash"] = _digest(head.last_hash, values)
    return await repository.append(session, values)


@dataclass(frozen=True, slots=True)
class ChainReport:
    events: int
    broken_at: int | None
    """The id of the first row whose hash or link does not hold (None: the chain is whole)."""
    detail: str

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _row_values(event: AuditEvent) -> dict[str, Any]:
    return {
        "actor": event.actor,
        "subject_user_id": event.subject_user_id,
        "action": event.action,
        "reason": event.reason,
        "request_id": event.request_id,
        "details": event.details,
        "created_at": event.created_at,
    }


async def verify_chain(session: AsyncSession) -> ChainReport:
    """Walk the chain from the first row: every hash recomputes and links to the one before,
    and the last matches the head (so removing the newest rows shows too)."""
    previous = GENESIS_HASH
    count = 0
    last_id = 0
    async for event in repository.walk(session):
        count += 1
        if event.previous_hash != previous:
            return ChainReport(count, event.id, f"event {event.id} does not follow its predecessor")
        if _digest(previous, _row_values(event)) != event.hash:
            return ChainReport(count, event.id, f"event {event.id} was altered")
        previous, last_id = event.hash, event.id
    head = await repository.get_head(session)
    if head.last_hash != previous or head.last_event_id != last_id:
        return ChainReport(count, head.last_event_id, "the newest events were removed")
    return ChainReport(count, None, f"{count} events, chain intact")


async def events_page(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    subject_user_id: uuid.UUID | None = None,
    actions: Sequence[str] | None = None,
) -> tuple[Sequence[AuditEvent], str | None]:
    before_id = decode_cursor(cursor, int)[0] if cursor is not None else None
    rows = await repository.page(
        session,
        limit=limit + 1,
        before_id=before_id,
        subject_user_id=subject_user_id,
        actions=actions,
    )
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].id)
