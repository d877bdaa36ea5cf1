"""Rendering pages: one Jinja2 environment (autoescaped), the values every page needs (the
signed-in user, a CSRF token, the idle timeout), and amounts in their currency's format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from coffer.kit.money import format_minor, get_currency
from coffer.settings import Settings
from coffer.web import csrf
from coffer.web.cookies import CSRF_COOKIE, set_cookie

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/app/static"


def money(minor: int, currency_code: str) -> str:
    """`1234567, "NGN"` → `12,345.67 NGN`: grouped thousands, the currency's own decimals."""
    currency = get_currency(currency_code)
    text = format_minor(minor, currency)
    sign = "-" if text.startswith("-") else ""
    whole, dot, fraction = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction} {currency.code}"


def amount_input(minor: int, currency_code: str) -> str:
    """The amount as a form field takes it back: `12345.67`."""
    return format_minor(minor, get_currency(currency_code))


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["money"] = money
templates.env.globals["static"] = STATIC_PREFIX


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    secret, is_new = csrf.cookie_secret(request)
    page = {
        "user": getattr(request.state, "web_user", None),
        "csrf_field": csrf.CSRF_FIELD,
        "csrf_token": csrf.form_token(settings, secret),
        "idle_timeout_seconds": settings.session_idle_timeout_seconds,
        "google_enabled": bool(settings.google_client_id and settings.google_redirect_uri),
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, page, status_code=status_code)
    if is_new:
        set_cookie(response, request, settings, CSRF_COOKIE, secret)
    return response
