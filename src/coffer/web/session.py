"""Who is signed in to the web app: the session cookie holds a signed token of its own type
(`web`, refused as a Bearer token) naming an `AuthSession`, checked on every request exactly
as an access token is (`authenticate_session`): logout, revocation, the idle timeout and a
deactivated account end it at once.

The token lives as long as its session may, so there is no refresh round trip to race: the
session row is the refresh authority, held server-side, and its `expires_at` bounds it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request, Response

from coffer.auth.principal import (
    AccountInactive,
    Principal,
    SessionExpired,
    SessionTimedOut,
    authenticate_session,
)
from coffer.auth.request_limits import RequestLimits
from coffer.auth.step_up import StepUpRequired, check_stepped_up
from coffer.db import Database
from coffer.identity import service
from coffer.identity.service import Account
from coffer.identity.tokens import InvalidToken, decode_token, issue_access_token
from coffer.models import Role
from coffer.settings import Settings
from coffer.web.cookies import SESSION_COOKIE, clear_cookie, set_cookie

WEB_TOKEN = "web"  # noqa: S105 - a token type, not a secret
SIGN_IN_PATH = "/app/sign-in"
HOME_PATH = "/app/"


class StepUpRedirect(Exception):
    """The action needs a fresh proof: the page sends the user to the step-up page, which
    brings them back to `back` to submit again."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


def require_fresh_proof(user: WebUser, settings: Settings, back: str) -> None:
    """As the API's `StepUp`: sensitive actions need a sign-in or step-up within the window."""
    try:
        check_stepped_up(user.principal, settings)
    except StepUpRequired as error:
        raise StepUpRedirect(back) from error


class SignInRequired(Exception):
    """No usable session: the page answers with a redirect to sign-in, telling why."""

    def __init__(self, notice: str | None, next_path: str | None) -> None:
        super().__init__(notice)
        self.notice = notice
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class WebUser:
    principal: Principal
    account: Account

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    @property
    def is_admin(self) -> bool:
        return self.principal.role is Role.ADMIN


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a path of this app (no open redirect)."""
    if path and path.startswith("/app/") and not path.startswith("//") and "\\" not in path:
        return path
    return HOME_PATH


def sign_in_url(notice: str | None = None, next_path: str | None = None) -> str:
    query = {k: v for k, v in (("notice", notice), ("next", next_path)) if v}
    return SIGN_IN_PATH + (f"?{urlencode(query)}" if query else "")


def start_web_session(
    response: Response,
    request: Request,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
) -> None:
    token, _ = issue_access_token(
        settings,
        user_id=user_id,
        session_id=session_id,
        role=role,
        token_type=WEB_TOKEN,
        ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    set_cookie(response, request, settings, SESSION_COOKIE, token)


def end_web_session(response: Response, request: Request, settings: Settings) -> None:
    clear_cookie(response, request, settings, SESSION_COOKIE)


async def current_user(request: Request) -> WebUser:
    settings: Settings = request.app.state.settings
    database: Database = request.app.state.database
    next_path = request.url.path if request.method == "GET" else None
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired(None, next_path)
    limits: RequestLimits = request.app.state.request_limits
    ip = request.client.host if request.client else None
    await limits.before_authentication(ip)
    try:
        claims = decode_token(settings, token, token_type=WEB_TOKEN)
        async with database.read() as session:
            principal = await authenticate_session(session, settings, claims)
            account = await service.get_account(session, principal.user_id)
    except SessionTimedOut as error:
        raise SignInRequired("idle", next_path) from error
    except InvalidToken as error:
        await limits.authentication_failed(ip)
        raise SignInRequired("expired", next_path) from error
    except SessionExpired as error:
        raise SignInRequired("expired", next_path) from error
    except AccountInactive as error:
        raise SignInRequired("inactive", None) from error
    await limits.user_request(principal.user_id.hex)
    user = WebUser(principal, account)
    request.state.web_user = user
    return user


CurrentUser = Annotated[WebUser, Depends(current_user)]
