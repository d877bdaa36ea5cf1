"""The web app's two cookies: the session (a signed token naming an `AuthSession`) and the
CSRF secret. Both HttpOnly, SameSite=Lax, scoped to /app, and Secure when the request came
over TLS (directly, through a trusted proxy's X-Forwarded-Proto, or COFFER_BEHIND_TLS)."""

from __future__ import annotations

from fastapi import Request, Response

from coffer.settings import Settings

SESSION_COOKIE = "coffer_session"
CSRF_COOKIE = "coffer_csrf"
COOKIE_PATH = "/app"


def over_tls(request: Request, settings: Settings) -> bool:
    return settings.behind_tls or request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, settings: Settings, name: str, value: str
) -> None:
    """A browser-session cookie: it ends with the browser, and the server-side session ends
    it sooner (logout, idle timeout, revocation)."""
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        secure=over_tls(request, settings),
        samesite="lax",
    )


def clear_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        secure=over_tls(request, settings),
        samesite="lax",
    )
