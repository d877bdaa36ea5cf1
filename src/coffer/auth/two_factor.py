"""The second factor for sensitive actions (withdrawals, new payout destinations).

When the principal's user has TOTP on, the request must carry a current code in `X-2FA-Code`,
not one already used in its time step. Users without 2FA pass. The rule follows the user, not
the credential: an API key acting for a user with 2FA needs the code too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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


async def require_two_factor(
    request: Request, principal: CurrentPrincipal, session: Session
) -> Principal:
    if not await totp.is_enabled(session, principal.user_id):
        return principal
    code = request.headers.get(TWO_FACTOR_HEADER, "").strip()
    if not code:
        raise TwoFactorRequired()
    await throttle(request, Action.CODE, account=str(principal.user_id))
    settings: Settings = request.app.state.settings
    if not await totp.verify_code(session, settings, principal.user_id, code, allow_recovery=False):
        raise totp.InvalidTwoFactorCode()
    return principal


SecondFactor = Annotated[Principal, Depends(require_two_factor)]
"""A principal that has just proven its second factor (when its user has one)."""
