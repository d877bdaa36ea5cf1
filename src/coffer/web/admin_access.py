"""Who may use the admin pages, and how an admin form is carried out.

The pages apply the admin API's own rules (`coffer.admin.endpoints`): admins only, through a
signed-in session; in production an admin without 2FA is refused; every action needs the
admin's current 2FA code when they have 2FA. Each action runs once per form: the form carries
an idempotency key, claimed in the API's idempotency store, so a double click or a resent post
replays the first outcome instead of crediting twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin.endpoints import require_admin_reader
from coffer.audit.service import user_actor
from coffer.auth.principal import require_admin
from coffer.auth.two_factor import check_second_factor
from coffer.db import Database
from coffer.idempotency import service as idempotency
from coffer.settings import Settings
from coffer.web.forms import Form, FormInvalid
from coffer.web.session import CurrentUser, WebUser

IDEMPOTENCY_FIELD = "idempotency_key"
TWO_FACTOR_FIELD = "two_factor_code"
ADMIN_PREFIX = "/app/admin"


async def current_admin(request: Request, user: CurrentUser) -> WebUser:
    """The signed-in admin (403 page for anyone else)."""
    await require_admin(user.principal)
    database: Database = request.app.state.database
    async with database.read() as session:
        await require_admin_reader(request, user.principal, session)
    return user


CurrentAdmin = Annotated[WebUser, Depends(current_admin)]


def form_context() -> dict[str, str]:
    """What every admin form template needs: its field names and a fresh idempotency key."""
    return {
        "idempotency_field": IDEMPOTENCY_FIELD,
        "two_factor_field": TWO_FACTOR_FIELD,
        "form_key": uuid.uuid4().hex,
    }


def actor(admin: WebUser) -> str:
    return user_actor(admin.user_id)


AdminWork = Callable[[AsyncSession, Settings], Awaitable[str]]
"""The action itself, in the form's unit of work; returns the outcome shown afterwards."""


async def carry_out(request: Request, admin: WebUser, form: Form, work: AdminWork) -> str:
    """Run `work` once for this form: the stored outcome when its key was already used for the
    same post, else after the admin's second factor, storing the outcome with the work."""
    key = form.get(IDEMPOTENCY_FIELD).strip()
    if not key or len(key) > idempotency.MAX_KEY_LENGTH:
        raise FormInvalid("This form is incomplete. Reload the page and try again.")
    settings: Settings = request.app.state.settings
    database: Database = request.app.state.database
    scope = admin.principal.scope
    fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
    async with database.transaction() as session:
        stored = await idempotency.claim(session, scope, key, fingerprint)
        if stored is not None:
            return stored.body
        await check_second_factor(request, admin.principal, session, form.get(TWO_FACTOR_FIELD))
        outcome = await work(session, settings)
        await idempotency.remember(
            session,
            scope,
            key,
            fingerprint,
            idempotency.StoredResponse(303, outcome),
            timedelta(hours=settings.idempotency_ttl_hours),
        )
    return outcome
