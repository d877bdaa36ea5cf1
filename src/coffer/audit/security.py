"""Security events: each appends an audit row and, where the user must hear of it, queues a
security email (sent whatever their preferences). Identity and API keys call these with one
line each, in the transaction of the change they announce."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.audit import repository
from coffer.audit.service import Action, record, user_actor
from coffer.db import Database
from coffer.kit.client import current_client
from coffer.models import ApiKey, User
from coffer.notifications.service import Event, notify
from coffer.settings import Settings

RECENT_SIGN_INS = 50
"""How many earlier sign-ins a new one is compared with to decide the device is new."""


async def signed_in(session: AsyncSession, settings: Settings, user: User) -> None:
    """A session opened; from an IP or device not seen in recent sign-ins, the user is told
    (not on their first sign-in ever: that one is no news)."""
    client = current_client()
    earlier = await repository.recent_details(
        session, user.id, str(Action.SIGN_IN), limit=RECENT_SIGN_INS
    )
    event_id = await record(
        session,
        Action.SIGN_IN,
        actor=user_actor(user.id),
        subject_user_id=user.id,
        details={"ip": client.ip, "user_agent": client.user_agent},
    )
    seen = any(
        d.get("ip") == client.ip and d.get("user_agent") == client.user_agent for d in earlier
    )
    if earlier and not seen:
        await notify(
            session,
            settings,
            user.id,
            Event.NEW_SIGN_IN,
            {"ip": client.ip, "user_agent": client.user_agent},
            key=f"audit:{event_id}",
        )


async def password_changed(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, *, reset: bool
) -> None:
    action = Action.PASSWORD_RESET if reset else Action.PASSWORD_CHANGED
    event_id = await record(session, action, actor=user_actor(user_id), subject_user_id=user_id)
    if reset:
        # The reset's own email (identity) already tells the owner, keys and sessions included.
        return
    await notify(
        session,
        settings,
        user_id,
        Event.PASSWORD_CHANGED,
        {"how": "reset" if reset else "changed"},
        key=f"audit:{event_id}",
    )


async def two_factor_changed(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, *, enabled: bool
) -> None:
    action = Action.TWO_FACTOR_ENABLED if enabled else Action.TWO_FACTOR_DISABLED
    event_id = await record(session, action, actor=user_actor(user_id), subject_user_id=user_id)
    await notify(
        session,
        settings,
        user_id,
        Event.TWO_FACTOR_CHANGED,
        {"state": "turned on" if enabled else "turned off"},
        key=f"audit:{event_id}",
    )


async def api_key_created(session: AsyncSession, settings: Settings, key: ApiKey) -> None:
    await record(
        session,
        Action.API_KEY_CREATED,
        actor=user_actor(key.user_id),
        subject_user_id=key.user_id,
        details={"key_id": str(key.id), "prefix": key.prefix, "permissions": key.permissions},
    )
    await notify(
        session,
        settings,
        key.user_id,
        Event.API_KEY_CREATED,
        {"name": key.name, "prefix": key.prefix, "permissions": ", ".join(key.permissions)},
        key=str(key.id),
    )


async def api_key_revoked(session: AsyncSession, key: ApiKey) -> None:
    await record(
        session,
        Action.API_KEY_REVOKED,
        actor=user_actor(key.user_id),
        subject_user_id=key.user_id,
        details={"key_id": str(key.id), "prefix": key.prefix},
    )


async def sign_in_burst(database: Database, account: str) -> None:
    """Record that an account's password attempts hit their limit (`account`: `user:<id>` for
    a known account, else a normalized email or phone): its own transaction, as the refused
    request's rolls back. An unknown account records nothing."""
    client = current_client()
    async with database.transaction() as session:
        if account.startswith("user:"):
            user_id: uuid.UUID | None = uuid.UUID(account.removeprefix("user:"))
        else:
            user_id = await repository.user_id_by_email_or_phone(session, account)
        if user_id is None:
            return
        await record(
            session,
            Action.SIGN_IN_FAILURES,
            actor="system",
            subject_user_id=user_id,
            details={"ip": client.ip},
        )
