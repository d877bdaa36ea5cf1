"""The second factor for sensitive actions (withdrawals, new payout destinations).

When the principal's user has TOTP on, the request must carry a current code in `X-2FA-Code`,
not one already used in its time step. Users without 2FA pass. The rule follows the user, not
the credential: an API key acting for a user with 2FA needs the code too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import CurrentPrincipal, Principal
from coffer.auth.throttle import Action, throttle
from coffer.errors import AppError
from coffer.http import Session
from coffer.identity import totp
from coffer.settings import Settings

TWO_FACTOR_HEADER = "x-2fa-code"


class TwoFactorRequired(AppError):
    code = "two_factor_required"
    http_status = 403
    default_message = "This action needs a current two-factor code in the X-2FA-Code header"


async def check_second_factor(
    request: Request, principal: Principal, session: AsyncSession, code: str
) -> None:
    """Refuse unless `code` is a current, unused TOTP code of a user who has 2FA (a user
    without it passes); the API reads the code from a header, the web app from its form."""
    if not await totp.is_enabled(session, principal.user_id):
        return
    code = code.strip()
    if not code:
        raise TwoFactorRequired()
    await throttle(request, Action.CODE, account=str(principal.user_id))
    settings: Settings = request.app.state.settings
    if not await totp.verify_code(session, settings, principal.user_id, code, allow_recovery=False):
        raise totp.InvalidTwoFactorCode()


async def require_two_factor(
    request: Request, principal: CurrentPrincipal, session: Session
) -> Principal:
    await check_second_factor(
        request, principal, session, request.headers.get(TWO_FACTOR_HEADER, "")
    )
    return principal


SecondFactor = Annotated[Principal, Depends(require_two_factor)]
"""A principal that has just proven its second factor (when its user has one)."""
