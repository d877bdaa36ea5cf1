"""Signing in and out: password (email or phone) with the 2FA step, Google, sign-up with the
emailed code, and password reset. Each post runs its service call in a unit of work of its
own, so a refusal is rolled back (or, for a counted attempt, committed) as in the API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from coffer.auth.throttle import Action, throttle
from coffer.db import Database
from coffer.errors import AppError
from coffer.identity import google, service, sessions
from coffer.identity.endpoints import get_google_client
from coffer.identity.schemas import (
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RegisterRequest,
    TwoFactorLoginRequest,
    VerifyRequest,
)
from coffer.settings import Settings
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.forms import parse
from coffer.web.messages import error_message
from coffer.web.rendering import render
from coffer.web.session import (
    CurrentUser,
    end_web_session,
    safe_next,
    sign_in_url,
    start_web_session,
)

router = APIRouter()

NOTICES = {
    "idle": "You were signed out after a period of inactivity. Sign in again.",
    "expired": "Your session has ended. Sign in again.",
    "inactive": "This account is deactivated.",
    "signed_out": "You are signed out.",
    "verified": "Your account is verified. Sign in.",
    "reset": "Your password is changed and every session has ended. Sign in with the new one.",
}
NextPath = Annotated[str | None, Query(alias="next", max_length=512)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _signed_in(request: Request, signed_in: service.SignedIn, next_path: str | None) -> Response:
    response = redirect(safe_next(next_path))
    start_web_session(
        response,
        request,
        _settings(request),
        user_id=signed_in.tokens.user_id,
        session_id=signed_in.tokens.session_id,
        role=signed_in.account.user.role,
    )
    return response


def _two_factor_page(
    request: Request, challenge_token: str, next_path: str | None, error: str | None = None
) -> Response:
    return render(
        request,
        "auth/two_factor.html",
        {"challenge_token": challenge_token, "next": safe_next(next_path), "error": error},
        status_code=422 if error else 200,
    )


@router.get("/sign-in")
async def sign_in_page(
    request: Request,
    next_path: NextPath = None,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    return render(
        request,
        "auth/sign_in.html",
        {"notice": NOTICES.get(notice or ""), "next": safe_next(next_path), "identifier": ""},
    )


@router.post("/sign-in")
async def sign_in(request: Request, form: VerifiedForm) -> Response:
    identifier = form.get("identifier").strip()
    next_path = form.get("next")
    by_email = "@" in identifier
    context: dict[str, object] = {"identifier": identifier, "next": safe_next(next_path)}
    try:
        payload = parse(
            LoginRequest,
            {
                "email" if by_email else "phone": identifier or None,
                "password": form.get("password"),
            },
        )
        database = _database(request)
        credentials = await service.read_credentials(
            database, email=payload.email, phone=payload.phone
        )
        await throttle(request, Action.LOGIN, account=credentials.throttle_account)
        async with database.transaction() as session:
            result = await service.login(session, _settings(request), credentials, payload.password)
    except service.AccountNotVerified as error:
        pending = (error.details or {}).get("verification_id")
        context |= {"error": error_message(error), "verification_id": pending}
        return render(request, "auth/sign_in.html", context, status_code=403)
    except AppError as error:
        context["error"] = error_message(error)
        return render(request, "auth/sign_in.html", context, status_code=error.http_status)
    if isinstance(result, service.TwoFactorChallenge):
        return _two_factor_page(request, result.challenge_token, next_path)
    return _signed_in(request, result, next_path)


@router.post("/sign-in/two-factor")
async def sign_in_two_factor(request: Request, form: VerifiedForm) -> Response:
    challenge_token = form.get("challenge_token")
    next_path = form.get("next")
    settings = _settings(request)
    try:
        payload = parse(
            TwoFactorLoginRequest,
            {"challenge_token": challenge_token, "code": form.get("code").strip()},
        )
        user_id = service.challenge_subject(settings, payload.challenge_token)
        await throttle(request, Action.CODE, account=f"user:{user_id}")
        async with _database(request).transaction() as session:
            signed_in = await service.complete_two_factor_login(
                session, settings, payload.challenge_token, payload.code
            )
    except service.InvalidChallenge as error:
        context = {"error": error_message(error), "next": safe_next(next_path), "identifier": ""}
        return render(request, "auth/sign_in.html", context, status_code=401)
    except AppError as error:
        return _two_factor_page(request, challenge_token, next_path, error_message(error))
    return _signed_in(request, signed_in, next_path)


@router.get("/sign-in/google")
async def google_sign_in(request: Request) -> Response:
    client = get_google_client(request)
    async with _database(request).transaction() as session:
        url = await google.authorization_url(session, _settings(request), client)
    return redirect(url)


@router.get("/sign-in/google/callback")
async def google_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where Google returns when COFFER_GOOGLE_REDIRECT_URI names this page."""
    client = get_google_client(request)
    settings = _settings(request)
    try:
        async with _database(request).transaction() as session:
            profile = await google.finish(
                session, settings, client, code=code, state=state, error=error
            )
            result = await service.sign_in_with_google(session, settings, profile)
    except AppError as failure:
        context = {"error": error_message(failure), "next": safe_next(None), "identifier": ""}
        return render(request, "auth/sign_in.html", context, status_code=failure.http_status)
    if isinstance(result, service.TwoFactorChallenge):
        return _two_factor_page(request, result.challenge_token, None)
    return _signed_in(request, result, None)


@router.post("/sign-out")
async def sign_out(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    if user.principal.session_id is not None:
        async with _database(request).transaction() as session:
            await sessions.revoke_session(session, user.principal.session_id, "logout")
    response = redirect(sign_in_url("signed_out"))
    end_web_session(response, request, _settings(request))
    return response


@router.get("/sign-up")
async def sign_up_page(request: Request) -> Response:
    return render(request, "auth/sign_up.html", {"values": {}})


@router.post("/sign-up")
async def sign_up(request: Request, form: VerifiedForm) -> Response:
    values = {name: form.optional(name) for name in ("email", "phone", "first_name", "last_name")}
    try:
        payload = parse(RegisterRequest, values | {"password": form.get("password")})
        await throttle(request, Action.EMAIL, account=payload.email)
        async with _database(request).transaction() as session:
            pending = await service.register(
                session,
                _settings(request),
                email=payload.email,
                password=payload.password,
                phone=payload.phone,
                first_name=payload.first_name,
                last_name=payload.last_name,
            )
    except AppError as error:
        context = {"values": values, "error": error_message(error)}
        return render(request, "auth/sign_up.html", context, status_code=error.http_status)
    return redirect(f"/app/sign-up/verify?verification={pending.verification_id}")


@router.get("/sign-up/verify")
async def verify_page(request: Request, verification: uuid.UUID) -> Response:
    return render(request, "auth/verify.html", {"verification": verification})


@router.post("/sign-up/verify")
async def verify(request: Request, form: VerifiedForm) -> Response:
    verification = form.get("verification")
    try:
        payload = parse(
            VerifyRequest, {"verification_id": verification, "code": form.get("code").strip()}
        )
        await throttle(request, Action.CODE, account=str(payload.verification_id))
        async with _database(request).transaction() as session:
            await service.verify_registration(
                session, _settings(request), payload.verification_id, payload.code
            )
    except AppError as error:
        context = {"verification": verification, "error": error_message(error)}
        return render(request, "auth/verify.html", context, status_code=error.http_status)
    return redirect(sign_in_url("verified"))


@router.post("/sign-up/resend")
async def resend(request: Request, form: VerifiedForm) -> Response:
    verification = form.get("verification")
    context: dict[str, object] = {"verification": verification}
    try:
        verification_id = uuid.UUID(verification)
        await throttle(request, Action.EMAIL, account=str(verification_id))
        async with _database(request).transaction() as session:
            await service.resend_verification(session, _settings(request), verification_id)
    except ValueError:
        context["error"] = "This sign-up link is not valid; sign up again."
        return render(request, "auth/verify.html", context, status_code=422)
    except AppError as error:
        context["error"] = error_message(error)
        return render(request, "auth/verify.html", context, status_code=error.http_status)
    context["notice"] = "If the sign-up is pending, a new code is on its way."
    return render(request, "auth/verify.html", context)


@router.get("/password-reset")
async def password_reset_page(request: Request) -> Response:
    return render(request, "auth/reset_request.html", {"email": ""})


@router.post("/password-reset")
async def password_reset(request: Request, form: VerifiedForm) -> Response:
    email = form.get("email").strip()
    try:
        payload = parse(PasswordResetRequest, {"email": email})
        await throttle(request, Action.EMAIL, account=payload.email)
        async with _database(request).transaction() as session:
            await service.request_password_reset(session, _settings(request), payload.email)
    except AppError as error:
        context = {"email": email, "error": error_message(error)}
        return render(request, "auth/reset_request.html", context, status_code=error.http_status)
    return render(request, "auth/reset_confirm.html", {"email": email})


@router.post("/password-reset/confirm")
async def password_reset_confirm(request: Request, form: VerifiedForm) -> Response:
    email = form.get("email").strip()
    try:
        payload = parse(
            PasswordResetConfirm,
            {
                "email": email,
                "code": form.get("code").strip(),
                "new_password": form.get("new_password"),
            },
        )
        await throttle(request, Action.CODE, account=payload.email)
        async with _database(request).transaction() as session:
            await service.reset_password(
                session,
                _settings(request),
                email=payload.email,
                code=payload.code,
                new_password=payload.new_password,
            )
    except AppError as error:
        context = {"email": email, "error": error_message(error)}
        return render(request, "auth/reset_confirm.html", context, status_code=error.http_status)
    return redirect(sign_in_url("reset"))
