"""A user's email preferences."""

from __future__ import annotations

from fastapi import APIRouter

from coffer.auth.principal import UserPrincipal
from coffer.http import ExactJSONRoute, Session, error_responses
from coffer.notifications.service import set_preferences
from coffer.schemas import Envelope, RequestSchema, Schema

router = APIRouter(prefix="/me", tags=["me"], route_class=ExactJSONRoute)


class NotificationPreferences(RequestSchema):
    activity_emails: bool
    """Money and account activity emails; security emails are sent whatever this says."""


class NotificationPreferencesOut(Schema):
    activity_emails: bool
    security_emails: bool = True


@router.patch(
    "/notifications",
    summary="Turn activity emails on or off (security emails always go)",
    responses=error_responses(401, 403, 422, 429),
)
async def update_notifications(
    body: NotificationPreferences, principal: UserPrincipal, session: Session
) -> Envelope[NotificationPreferencesOut]:
    await set_preferences(session, principal.user_id, activity_emails=body.activity_emails)
    return Envelope(
        message="Preferences saved",
        data=NotificationPreferencesOut(activity_emails=body.activity_emails),
    )
