"""`/me`: the signed-in user's profile, deactivation, and proving a new phone or email."""

from __future__ import annotations

from fastapi import APIRouter, Request

from coffer.auth.principal import UserPrincipal, UserPrincipalApart
from coffer.auth.step_up import StepUp
from coffer.auth.throttle import Action, throttle
from coffer.http import AppSettings, DatabaseDependency, ExactJSONRoute, Session, error_responses
from coffer.identity import service
from coffer.identity.schemas import (
    CodeRequest,
    EmailChangeRequest,
    PasswordRequest,
    PendingChangeOut,
    PhoneRequest,
    ProfileOut,
    ProfileUpdate,
)
from coffer.schemas import Envelope

me_router = APIRouter(prefix="/me", tags=["account"], route_class=ExactJSONRoute)


@me_router.get("", summary="The signed-in user", responses=error_responses(401, 403))
async def get_me(principal: UserPrincipal, session: Session) -> Envelope[ProfileOut]:
    account = await service.get_account(session, principal.user_id)
    return Envelope(data=ProfileOut.of(account))


@me_router.patch(
    "",
    summary="Change names or the profile image (https)",
    responses=error_responses(401, 403, 422),
)
async def update_me(
    payload: ProfileUpdate, principal: UserPrincipal, session: Session
) -> Envelope[ProfileOut]:
    account = await service.update_profile(
        session, principal.user_id, payload.model_dump(exclude_unset=True)
    )
    return Envelope(message="Profile updated", data=ProfileOut.of(account))


@me_router.post(
    "/deactivate",
    summary="Deactivate the account: every session ends; only an admin can reactivate it",
    responses=error_responses(401, 403, 409, 422, 429),
)
async def deactivate_me(
    payload: PasswordRequest,
    request: Request,
    principal: UserPrincipalApart,
    database: DatabaseDependency,
    session: Session,
    settings: AppSettings,
) -> Envelope[None]:
    await throttle(request, Action.LOGIN, account=f"user:{principal.user_id}")
    credentials = await service.read_user_credentials(database, principal.user_id)
    await service.deactivate(session, settings, credentials, payload.password)
    return Envelope(message="Account deactivated", data=None)


def _pending_change(pending: service.PendingChange) -> PendingChangeOut:
    return PendingChangeOut(address=pending.address, expires_in=pending.expires_in)


@me_router.post(
    "/phone",
    status_code=202,
    summary="Add or change the phone number (needs a step-up): texts it a code",
    description="The number counts (sign-in, payments by phone) only once "
    "`POST /me/phone/verify` confirms the code; until then any verified number stays.",
    responses=error_responses(401, 403, 422, 429),
)
async def request_phone(
    payload: PhoneRequest,
    request: Request,
    principal: StepUp,
    session: Session,
    settings: AppSettings,
) -> Envelope[PendingChangeOut]:
    await throttle(request, Action.EMAIL, account=f"user:{principal.user_id}")
    await throttle(request, Action.EMAIL, account=payload.phone)
    pending = await service.request_phone(session, settings, principal.user_id, payload.phone)
    return Envelope(status_code=202, message="A code is on its way", data=_pending_change(pending))


@me_router.post(
    "/phone/verify",
    summary="Confirm the texted code: the number becomes the account's (and leaves any other)",
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def verify_phone(
    payload: CodeRequest,
    request: Request,
    principal: UserPrincipal,
    session: Session,
    settings: AppSettings,
) -> Envelope[ProfileOut]:
    await throttle(request, Action.CODE, account=f"user:{principal.user_id}")
    account = await service.verify_phone(session, settings, principal.user_id, payload.code)
    return Envelope(message="Phone number verified", data=ProfileOut.of(account))


@me_router.post(
    "/email",
    status_code=202,
    summary="Change the email address (needs a step-up): emails the new address a code",
    description="The address changes only once `POST /me/email/verify` confirms the code.",
    responses=error_responses(401, 403, 422, 429),
)
async def request_email(
    payload: EmailChangeRequest,
    request: Request,
    principal: StepUp,
    session: Session,
    settings: AppSettings,
) -> Envelope[PendingChangeOut]:
    await throttle(request, Action.EMAIL, account=f"user:{principal.user_id}")
    await throttle(request, Action.EMAIL, account=payload.email)
    pending = await service.request_email(session, settings, principal.user_id, payload.email)
    return Envelope(status_code=202, message="A code is on its way", data=_pending_change(pending))


@me_router.post(
    "/email/verify",
    summary="Confirm the code sent to the new address: it becomes the sign-in email",
    responses=error_responses(400, 401, 403, 409, 422, 429),
)
async def verify_email(
    payload: CodeRequest,
    request: Request,
    principal: UserPrincipal,
    session: Session,
    settings: AppSettings,
) -> Envelope[ProfileOut]:
    await throttle(request, Action.CODE, account=f"user:{principal.user_id}")
    account = await service.verify_email(session, settings, principal.user_id, payload.code)
    return Envelope(message="Email address changed", data=ProfileOut.of(account))
