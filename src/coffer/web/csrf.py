"""CSRF protection for every form: a signed double submit.

The browser holds a random secret in an HttpOnly cookie; each rendered form carries a
timestamp and an HMAC of that secret and timestamp (under a key derived from
COFFER_SECRET_KEY). A post is accepted only when the form's token is the MAC of the cookie's
secret and is recent. Another site can make the browser send the cookie but can neither
read it nor compute the MAC for it, and SameSite=Lax keeps the cookie off its cross-site
posts in the first place.
"""

from __future__ import annotations

import hmac
import secrets
import time

from fastapi import Request

from coffer.errors import AppError
from coffer.kit.crypto import keyed_hash
from coffer.settings import Settings
from coffer.web.cookies import CSRF_COOKIE
from coffer.web.forms import Form

CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE_SECONDS = 24 * 3600
"""A form older than this is refused (reloading the page gives a fresh one)."""
_SECRET_BYTES = 32
_MAX_COOKIE_LENGTH = 128


class CsrfRefused(AppError):
    code = "csrf_failed"
    http_status = 403
    default_message = (
        "This form could not be verified as coming from this site, so nothing was done. "
        "Reload the page and try again."
    )


def cookie_secret(request: Request) -> tuple[str, bool]:
    """The browser's CSRF secret, and whether it is new (then the response must set it)."""
    existing = getattr(request.state, "csrf_secret", None) or request.cookies.get(CSRF_COOKIE)
    if existing and len(existing) <= _MAX_COOKIE_LENGTH:
        request.state.csrf_secret = existing
        return existing, False
    fresh = secrets.token_urlsafe(_SECRET_BYTES)
    request.state.csrf_secret = fresh
    return fresh, True


def _mac(settings: Settings, secret: str, issued: str) -> str:
    return keyed_hash(settings, "web-csrf", secret, issued)


def form_token(settings: Settings, secret: str) -> str:
    issued = str(int(time.time()))
    return f"{issued}.{_mac(settings, secret, issued)}"


def check(request: Request, settings: Settings, form: Form) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    token = form.get(CSRF_FIELD)
    if not cookie or not token:
        raise CsrfRefused()
    issued, _, mac = token.partition(".")
    if not issued.isdigit() or not 0 <= time.time() - int(issued) <= CSRF_MAX_AGE_SECONDS:
        raise CsrfRefused()
    if not hmac.compare_digest(mac, _mac(settings, cookie, issued)):
        raise CsrfRefused()
