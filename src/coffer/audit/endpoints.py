"""A user's own security events: sign-ins, password and 2FA changes, keys, admin actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from coffer.admin.schemas import AuditEventOut, AuditPage
from coffer.audit.service import SECURITY_ACTIONS, events_page
from coffer.auth.principal import UserPrincipal
from coffer.http import ExactJSONRoute, Session, error_responses
from coffer.schemas import Envelope

router = APIRouter(prefix="/me", tags=["me"], route_class=ExactJSONRoute)


@router.get(
    "/security-events",
    summary="Your security events, newest first",
    responses=error_responses(401, 403, 422, 429),
)
async def security_events(
    principal: UserPrincipal,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Envelope[AuditPage]:
    rows, next_cursor = await events_page(
        session,
        limit=limit,
        cursor=cursor,
        subject_user_id=principal.user_id,
        actions=[str(action) for action in SECURITY_ACTIONS],
    )
    return Envelope(
        data=AuditPage(events=[AuditEventOut.of(e) for e in rows], next_cursor=next_cursor)
    )
