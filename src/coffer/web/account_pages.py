"""The account: the step-up prompt, security (2FA with its QR code and recovery codes,
sessions, password), API keys, and profile with notification settings."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from coffer.apikeys import service as apikeys
from coffer.apikeys.schemas import ApiKeyCreate, ApiKeyRollover
from coffer.auth.principal import Permission
from coffer.auth.throttle import Action, throttle
from coffer.db import Database
from coffer.errors import AppError
from coffer.identity import service, sessions, totp
from coffer.identity.schemas import (
    PasswordChangeRequest,
    ProfileUpdate,
    StepUpRequest,
    TwoFactorDisableRequest,
    TwoFactorEnableRequest,
)
from coffer.kit.clock import utcnow
from coffer.notifications import service as notifications
from coffer.settings import Settings
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.forms import parse
from coffer.web.messages import error_message
from coffer.web.rendering import render
from coffer.web.session import CurrentUser, WebUser, require_fresh_proof, safe_next

router = APIRouter()
KEYS_PAGE_SIZE = 50
EXPIRIES = [
    (apikeys.Expiry.HOUR, "1 hour"),
    (apikeys.Expiry.DAY, "1 day"),
    (apikeys.Expiry.MONTH, "1 month"),
    (apikeys.Expiry.YEAR, "1 year"),
]
NextPath = Annotated[str | None, Query(alias="next", max_length=512)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


@router.get("/step-up")
async def step_up_page(request: Request, user: CurrentUser, next_path: NextPath = None) -> Response:
    return render(request, "account/step_up.html", {"next": safe_next(next_path)})


@router.post("/step-up")
async def step_up(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    next_path = safe_next(form.get("next"))
    two_factor = user.account.two_factor_enabled
    try:
        payload = parse(
            StepUpRequest,
            {"code": form.optional("code")} if two_factor else {"password": form.get("password")},
        )
        account = f"user:{user.user_id}"
        await throttle(request, Action.CODE if two_factor else Action.LOGIN, account=account)
        if user.principal.session_id is None:
            raise service.InvalidCredentials()
        async with _database(request).transaction() as session:
            await service.step_up(
                _database(request),
                session,
                _settings(request),
                user_id=user.user_id,
                session_id=user.principal.session_id,
                password=payload.password,
                code=payload.code,
            )
    except AppError as error:
        context = {"next": next_path, "error": error_message(error)}
        return render(request, "account/step_up.html", context, status_code=error.http_status)
    return redirect(next_path)


async def _security_page(
    request: Request,
    user: WebUser,
    extra: dict[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    async with _database(request).read() as session:
        open_sessions = list(await sessions.list_open_sessions(session, user.user_id))
    return render(
        request,
        "account/security.html",
        {
            "sessions": open_sessions,
            "current_session": user.principal.session_id,
            **(extra or {}),
        },
        status_code=status_code,
    )


@router.get("/security")
async def security_page(request: Request, user: CurrentUser) -> Response:
    return await _security_page(request, user)


@router.post("/security/2fa/setup")
async def two_factor_setup(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    require_fresh_proof(user, _settings(request), "/app/security")
    try:
        async with _database(request).transaction() as session:
            setup = await service.setup_two_factor(session, _settings(request), user.user_id)
    except AppError as error:
        return await _security_page(request, user, {"error": error_message(error)}, 409)
    qr = "data:image/svg+xml;base64," + base64.b64encode(setup.qr_svg.encode()).decode()
    return render(
        request, "account/two_factor_setup.html", {"secret": setup.secret, "qr_data_url": qr}
    )


@router.post("/security/2fa/enable")
async def two_factor_enable(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    require_fresh_proof(user, _settings(request), "/app/security")
    try:
        payload = parse(TwoFactorEnableRequest, {"code": form.get("code").strip()})
        await throttle(request, Action.CODE, account=f"user:{user.user_id}")
        async with _database(request).transaction() as session:
            codes = await totp.enable(session, _settings(request), user.user_id, payload.code)
    except AppError as error:
        return await _security_page(request, user, {"error": error_message(error)}, 422)
    return render(request, "account/recovery_codes.html", {"recovery_codes": codes})


@router.post("/security/2fa/disable")
async def two_factor_disable(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    require_fresh_proof(user, _settings(request), "/app/security")
    try:
        payload = parse(
            TwoFactorDisableRequest,
            {"password": form.get("password"), "code": form.get("code").strip()},
        )
        account = f"user:{user.user_id}"
        await throttle(request, Action.LOGIN, account=account)
        await throttle(request, Action.CODE, account=account)
        async with _database(request).transaction() as session:
            await service.disable_two_factor(
                _database(request),
                session,
                _settings(request),
                user.user_id,
                payload.password,
                payload.code,
            )
    except AppError as error:
        return await _security_page(
            request, user, {"error": error_message(error)}, error.http_status
        )
    return redirect("/app/security")


@router.post("/security/password")
async def change_password(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    require_fresh_proof(user, _settings(request), "/app/security")
    try:
        payload = parse(
            PasswordChangeRequest,
            {
                "current_password": form.get("current_password"),
                "new_password": form.get("new_password"),
            },
        )
        await throttle(request, Action.LOGIN, account=f"user:{user.user_id}")
        credentials = await service.read_user_credentials(_database(request), user.user_id)
        async with _database(request).transaction() as session:
            await service.change_password(
                session,
                _settings(request),
                credentials=credentials,
                session_id=user.principal.session_id,
                current_password=payload.current_password,
                new_password=payload.new_password,
            )
    except AppError as error:
        return await _security_page(
            request, user, {"error": error_message(error)}, error.http_status
        )
    notice = "Password changed. Your other sessions have ended."
    return await _security_page(request, user, {"notice": notice})


@router.post("/security/sessions/{session_id}/revoke")
async def revoke_session(
    request: Request, user: CurrentUser, form: VerifiedForm, session_id: uuid.UUID
) -> Response:
    async with _database(request).transaction() as session:
        await sessions.revoke_own_session(session, user.user_id, session_id)
    return redirect("/app/security")


async def _keys_page(
    request: Request,
    user: WebUser,
    extra: dict[str, object] | None = None,
    status_code: int = 200,
) -> Response:
    async with _database(request).read() as session:
        keys, _ = await apikeys.list_keys(session, user.user_id, limit=KEYS_PAGE_SIZE, cursor=None)
    now = utcnow()
    listed = [(key, apikeys.status_of(key, now)) for key in keys]
    return render(
        request,
        "account/api_keys.html",
        {
            "keys": listed,
            "permissions": list(Permission),
            "expiries": EXPIRIES,
            **(extra or {}),
        },
        status_code=status_code,
    )


@router.get("/api-keys")
async def keys_page(request: Request, user: CurrentUser) -> Response:
    return await _keys_page(request, user)


@router.post("/api-keys")
async def create_key(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    require_fresh_proof(user, _settings(request), "/app/api-keys")
    try:
        payload = parse(
            ApiKeyCreate,
            {
                "name": form.get("name"),
                "permissions": form.getall("permissions"),
                "expiry": form.get("expiry"),
            },
        )
        async with _database(request).transaction() as session:
            issued = await apikeys.create_key(
                session,
                _settings(request),
                user.user_id,
                name=payload.name,
                permissions=payload.permissions,
                expiry=payload.expiry,
            )
    except AppError as error:
        return await _keys_page(request, user, {"error": error_message(error)}, error.http_status)
    return await _keys_page(request, user, {"issued": issued}, 201)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_key(
    request: Request, user: CurrentUser, form: VerifiedForm, key_id: uuid.UUID
) -> Response:
    async with _database(request).transaction() as session:
        await apikeys.revoke(session, user.user_id, key_id)
    return redirect("/app/api-keys")


@router.post("/api-keys/{key_id}/rollover")
async def roll_over_key(
    request: Request, user: CurrentUser, form: VerifiedForm, key_id: uuid.UUID
) -> Response:
    require_fresh_proof(user, _settings(request), "/app/api-keys")
    try:
        payload = parse(
            ApiKeyRollover, {"expired_key_id": str(key_id), "expiry": form.get("expiry")}
        )
        async with _database(request).transaction() as session:
            issued = await apikeys.rollover(
                session,
                _settings(request),
                user.user_id,
                expired_key_id=payload.expired_key_id,
                expiry=payload.expiry,
            )
    except AppError as error:
        return await _keys_page(request, user, {"error": error_message(error)}, error.http_status)
    return await _keys_page(request, user, {"issued": issued}, 201)


async def _profile_page(
    request: Request, user: WebUser, extra: dict[str, object] | None = None
) -> Response:
    async with _database(request).read() as session:
        activity = await notifications.wants_activity_emails(session, user.user_id)
    return render(request, "account/profile.html", {"activity_emails": activity, **(extra or {})})


@router.get("/profile")
async def profile_page(request: Request, user: CurrentUser) -> Response:
    return await _profile_page(request, user)


@router.post("/profile")
async def update_profile(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    try:
        payload = parse(
            ProfileUpdate, {name: form.optional(name) for name in ("first_name", "last_name")}
        )
    except AppError as error:
        return await _profile_page(request, user, {"error": error_message(error)})
    async with _database(request).transaction() as session:
        await service.update_profile(
            session, user.user_id, payload.model_dump(include={"first_name", "last_name"})
        )
    return redirect("/app/profile")


@router.post("/profile/notifications")
async def update_notifications(request: Request, user: CurrentUser, form: VerifiedForm) -> Response:
    async with _database(request).transaction() as session:
        await notifications.set_preferences(
            session, user.user_id, activity_emails=form.get("activity_emails") == "on"
        )
    return redirect("/app/profile")
