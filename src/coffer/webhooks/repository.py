"""Every query of the webhooks domain. The one row lock is `lock_owner_for_update`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.sql import dialect_insert
from coffer.models import (
    DeliveryStatus,
    Event,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFanOutCursor,
)

MAX_ATTEMPTS_SHOWN = 20
"""Per delivery in a listing: the newest ones (manual resends could add any number)."""


async def lock_owner_for_update(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialize endpoint creation per user, so two requests cannot both take the last slot.
    (SQLite needs no lock: its write transactions are already serial.)"""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def count_live(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (
        await session.execute(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None))
        )
    ).scalar_one()


async def get_owned(
    session: AsyncSession, user_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    """The user's endpoint, unless deleted (someone else's is None too: a 404 either way)."""
    return (
        await session.execute(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.user_id == user_id,
                WebhookEndpoint.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()


async def list_owned(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> Sequence[WebhookEndpoint]:
    """Newest first, by (created_at, id), starting after `before`."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None)
    )
    if before is not None:
        query = query.where(
            tuple_(WebhookEndpoint.created_at, WebhookEndpoint.id) < tuple_(*before)
        )
    query = query.order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
    return (await session.execute(query.limit(limit))).scalars().all()


async def endpoints_sealed_not_with(
    session: AsyncSession, key_id: str, limit: int
) -> Sequence[WebhookEndpoint]:
    return (
        (
            await session.execute(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.encryption_key_id != key_id)
                .order_by(WebhookEndpoint.id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )


async def live_endpoints_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> Sequence[WebhookEndpoint]:
    """The enabled, undeleted endpoints of these users (the fan-out's targets)."""
    return (
        (
            await session.execute(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.user_id.in_(user_ids),
                    WebhookEndpoint.is_enabled.is_(True),
                    WebhookEndpoint.deleted_at.is_(None),
                )
            )
        )
        .scalars()
        .all()
    )


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """The new delivery's id, or None when this event already has one for this endpoint."""
    statement = (
        dialect_insert(session, WebhookDelivery.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def delivery_with_endpoint(
    session: AsyncSession, delivery_id: int
) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
    row = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == delivery_id)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def get_delivery(
    session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: int
) -> WebhookDelivery | None:
    return (
        await session.execute(
            select(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
            )
        )
    ).scalar_one_or_none()


async def list_deliveries(
    session: AsyncSession, endpoint_id: uuid.UUID, *, limit: int, before_id: int | None
) -> Sequence[WebhookDelivery]:
    """Newest first, by id, starting after `before_id`."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[int]
) -> Sequence[WebhookAttempt]:
    """The newest `MAX_ATTEMPTS_SHOWN` attempts of each delivery, newest first."""
    newest = (
        select(
            WebhookAttempt.id,
            func.row_number()
            .over(partition_by=WebhookAttempt.delivery_id, order_by=WebhookAttempt.id.desc())
            .label("position"),
        )
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .subquery()
    )
    return (
        (
            await session.execute(
                select(WebhookAttempt)
                .join(newest, newest.c.id == WebhookAttempt.id)
                .where(newest.c.position <= MAX_ATTEMPTS_SHOWN)
                .order_by(WebhookAttempt.id.desc())
            )
        )
        .scalars()
        .all()
    )


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> None:
    session.add(WebhookAttempt(**values))
    await session.flush()


async def settle_delivery(
    session: AsyncSession,
    delivery_id: int,
    *,
    seen_attempt_count: int | None,
    values: dict[str, Any],
) -> bool:
    """Move a pending delivery on, unless another run already did (then False). With
    `seen_attempt_count`, only if no scheduled attempt was recorded since it was read."""
    condition = [
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.status == DeliveryStatus.PENDING,
    ]
    if seen_attempt_count is not None:
        condition.append(WebhookDelivery.attempt_count == seen_attempt_count)
    result = await session.execute(
        update(WebhookDelivery)
        .where(*condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def reopen_delivery(session: AsyncSession, delivery_id: int, now: datetime) -> bool:
    """Make a finished delivery pending again for a resend; False if it is still pending."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status != DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, completed_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_endpoint_succeeded(
    session: AsyncSession, endpoint_id: uuid.UUID, now: datetime
) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(last_success_at=now)
        .execution_options(synchronize_session=False)
    )


async def disable_failing_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, failing_since: datetime, now: datetime
) -> bool:
    """Disable an enabled endpoint with no success since `failing_since`; True if it was."""
    result = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.is_enabled.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
            (WebhookEndpoint.last_success_at.is_(None))
            | (WebhookEndpoint.last_success_at < failing_since),
        )
        .values(is_enabled=False, disabled_reason="failing", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


FAN_OUT_CURSOR_ID = 1


async def lock_fan_out_cursor(session: AsyncSession) -> int:
    """The fan-out's position, locked, so two runners never fan out the same events at once."""
    return (
        await session.execute(
            select(WebhookFanOutCursor.last_event_id)
            .where(WebhookFanOutCursor.id == FAN_OUT_CURSOR_ID)
            .with_for_update()
        )
    ).scalar_one()


async def move_fan_out_cursor(session: AsyncSession, last_event_id: int) -> None:
    await session.execute(
        update(WebhookFanOutCursor)
        .where(WebhookFanOutCursor.id == FAN_OUT_CURSOR_ID)
        .values(last_event_id=last_event_id)
    )


async def newest_event_id(session: AsyncSession) -> int:
    return (await session.execute(select(func.coalesce(func.max(Event.id), 0)))).scalar_one()


async def events_for_endpoints(
    session: AsyncSession, after_id: int, up_to_id: int, limit: int
) -> Sequence[Any]:
    """Events in (after_id, up_to_id] of users with a live endpoint, in id order."""
    owners = select(WebhookEndpoint.user_id).where(
        WebhookEndpoint.is_enabled.is_(True), WebhookEndpoint.deleted_at.is_(None)
    )
    return (
        await session.execute(
            select(Event.id, Event.user_id, Event.type, Event.version, Event.data, Event.created_at)
            .where(Event.id > after_id, Event.id <= up_to_id, Event.user_id.in_(owners))
            .order_by(Event.id)
            .limit(limit)
        )
    ).all()
