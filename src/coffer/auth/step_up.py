"""Step-up ("sudo mode", as GitHub has it): sensitive actions need a fresh proof.

A stolen access token alone must not mint API keys, turn 2FA on or off, change the email,
phone or password, or add a payout destination. Those routes take `StepUp`: the session must
have proven itself (signing in, or `POST /auth/step-up` with the password, or a TOTP or
recovery code when 2FA is on) within COFFER_STEP_UP_TTL_SECONDS, else 403 `step_up_required`.
API keys never step up: they are refused as they are on every user-only route.

Payout destinations (another branch) wire it the same way: `principal: StepUp` in the route
signature. Routes that also check a password take `StepUpApart` (see `UserPrincipalApart`).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from coffer.auth.principal import Principal, UserPrincipal, UserPrincipalApart, stepped_up_at
from coffer.errors import AppError
from coffer.http import Session
from coffer.kit.clock import utcnow
from coffer.settings import Settings


class StepUpRequired(AppError):
    code = "step_up_required"
    http_status = 403
    default_message = (
        "This action needs a fresh proof: POST /auth/step-up with your password "
        "(or a two-factor code when 2FA is on), then try again"
    )


def check_stepped_up(principal: Principal, settings: Settings) -> Principal:
    proven = principal.stepped_up_at
    if principal.is_api_key or proven is None:
        raise StepUpRequired()
    if utcnow() - proven > timedelta(seconds=settings.step_up_ttl_seconds):
        raise StepUpRequired()
    return principal


async def require_step_up(
    request: Request, principal: UserPrincipal, session: Session
) -> Principal:
    settings: Settings = request.app.state.settings
    try:
        return check_stepped_up(principal, settings)
    except StepUpRequired:
        if principal.session_id is None:
            raise
    # The principal may come from the auth cache, older than a step-up just made through
    # another API process: the session's own row decides.
    fresh = dataclasses.replace(
        principal, stepped_up_at=await stepped_up_at(session, principal.session_id)
    )
    return check_stepped_up(fresh, settings)


async def require_step_up_apart(request: Request, principal: UserPrincipalApart) -> Principal:
    return check_stepped_up(principal, request.app.state.settings)


StepUp = Annotated[Principal, Depends(require_step_up)]
"""A signed-in user whose session proved itself within the step-up window."""
StepUpApart = Annotated[Principal, Depends(require_step_up_apart)]
"""`StepUp` authenticated apart from the request's session (routes that run argon2)."""
