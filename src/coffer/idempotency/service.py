"""The Idempotency-Key rules (DESIGN.md §6), for every mutating route except transfers, which
keep their key on the transfer row itself (coffer.transfers.replay).

Same key + same request → the stored response, replayed; same key + a different request →
422 `idempotency_key_reused`; same key while the first request is still running → 409
`idempotency_key_in_use`. Keys are scoped per principal and kept at least 24 hours.

Only successful responses are stored, in the same transaction as the work they answer: a
request that failed changed nothing, so retrying it with the same key simply runs it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.idempotency import repository
from coffer.jobs.outbox import enqueue
from coffer.kit import exact_json
from coffer.kit.clock import utcnow

PURGE_JOB = "idempotency.purge_expired"
PURGE_INTERVAL = timedelta(hours=1)
PURGE_BATCH = 5_000
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(AppError):
    code = "idempotency_key_reused"
    http_status = 422
    default_message = "This idempotency key was already used for a different request"


class IdempotencyKeyInUse(AppError):
    code = "idempotency_key_in_use"
    http_status = 409
    default_message = "A request with this idempotency key is still being processed"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and the JSON body's content (key
    order and spacing aside); a body that is not JSON counts byte for byte, and one nested too
    deep is refused (422 `json_too_deep`) before anything recursive walks it."""
    try:
        content = json.dumps(
            exact_json.loads(body),
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        ).encode()
    except ValueError:
        content = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(content)
    return digest.hexdigest()


async def claim(
    session: AsyncSession, scope: str, key: str, request_fingerprint: str
) -> StoredResponse | None:
    """Take the key for this request: the stored response if it already ran, None if the
    request should run now (and then be `remember`ed)."""
    if not await repository.try_lock(session, scope, key):
        raise IdempotencyKeyInUse()
    record = await repository.find(session, scope, key)
    if record is None:
        return None
    if record.expires_at <= utcnow():
        await repository.delete_record(session, record.id)
        return None
    if record.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    return StoredResponse(record.response_status, record.response_body)


async def remember(
    session: AsyncSession,
    scope: str,
    key: str,
    request_fingerprint: str,
    response: StoredResponse,
    ttl: timedelta,
) -> None:
    now = utcnow()
    await repository.insert_record(
        session,
        {
            "scope": scope,
            "key": key,
            "request_fingerprint": request_fingerprint,
            "response_status": response.status_code,
            "response_body": response.body,
            "created_at": now,
            "expires_at": now + ttl,
        },
    )
    # At most one purge waits at a time; it runs an interval from now.
    await enqueue(session, PURGE_JOB, dedupe_key=PURGE_JOB, run_at=now + PURGE_INTERVAL)


async def purge_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete one batch of expired records; returns how many (a full batch means more wait)."""
    return await repository.delete_expired(session, now or utcnow(), PURGE_BATCH)
