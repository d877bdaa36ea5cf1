"""`/auth/...`: sign-up, sign-in, sessions, step-up, passwords, 2FA, Google (`/me` lives in
`account_endpoints`)."""

from __future__ import annotations

from typing import Annotated

from authlib.integrations.starlette_client import StarletteOAuth2App
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from coffer.auth.principal import UserPrincipal, UserPrincipalApart
from coffer.auth.step_up import StepUp, StepUpApart
from coffer.auth.throttle import Action, throttle
from coffer.http import (
    DatabaseDependency,
    ExactJSONRoute,
    Session,
    WriteSession,
    error_responses,
)
from coffer.identity import google, service, sessions, totp
from coffer.identity.schemas import (
    ChallengeOut,
    LoginRequest,
    PasswordChangeRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    PendingVerificationOut,
    ProfileOut,
    RecoveryCodesOut,
    RefreshedOut,
    RefreshRequest,
    RegisterRequest,
    ResendRequest,
    StepUpRequest,
    TokensOut,
    TwoFactorDisableRequest,
    TwoFactorEnableRequest,
    TwoFactorLoginRequest,
    TwoFactorSetupOut,
    VerifyRequest,
    sign_in_out,
)
from coffer.schemas import Envelope
from coffer.settings import Settings

auth_router = APIRouter(prefix="/auth", tags=["auth"], route_class=ExactJSONRoute)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_google_client(request: Request) -> StarletteOAuth2App:
    """The app's Google client, built on first use; 404 when sign-in is not configured."""
    state = request.app.state
    if not hasattr(state, "google_client"):
        state.google_client = google.build_client(state.settings)
    client: StarletteOAuth2App | None = state.google_client
    if client is None:
        raise google.ProviderNotConfigured()
    return client


AppSettings = Annotated[Settings, Depends(get_app_settings)]
GoogleClient = Annotated[StarletteOAuth2App, Depends(get_google_client)]
SignInOut = Envelope[TokensOut | ChallengeOut]


def _pending(pending: service.PendingVerification) -> PendingVerificationOut:
    return PendingVerificationOut(
        verification_id=pending.verification_id,
        email=pending.email,
        expires_in=pending.expires_in,
    )


@auth_router.post(
    "/register",
    status_code=201,
    summary="Sign up: emails a 6-digit code; the account works once it is verified",
    description="An address that already has an account is answered the same way (its owner "
    "is emailed instead); a phone number given here is texted a code once the email is "
    "verified, and counts only once that code is confirmed (`POST /me/phone/verify`).",
    responses=error_responses(422, 429),
)
async def register(
    payload: RegisterRequest, request: Request, session: Session, settings: AppSettings
) -> Envelope[PendingVerificationOut]:
    await throttle(request, Action.EMAIL, account=payload.email)
    pending = await service.register(
        session,
        settings,
        email=payload.email,
        password=payload.password,
        phone=payload.phone,
        first_name=payload.first_name,
        last_name=payload.last_name,
    )
    return Envelope(
        status_code=201, message="Check your email for the code", data=_pending(pending)
    )


@auth_router.post(
    "/verify",
    summary="Confirm the sign-up code: activates the account and opens its primary wallet",
    responses=error_responses(400, 409, 422, 429),
)
async def verify(
    payload: VerifyRequest, request: Request, session: Session, settings: AppSettings
) -> Envelope[ProfileOut]:
    await throttle(request, Action.CODE, account=str(payload.verification_id))
    account = await service.verify_registration(
        session, settings, payload.verification_id, payload.code
    )
    return Envelope(message="Account verified; sign in", data=ProfileOut.of(account))


@auth_router.post(
    "/verify/resend",
    status_code=202,
    summary="Email a new sign-up code (the previous one stops working)",
    description="Answers the same whether or not the id names a pending sign-up.",
    responses=error_responses(422, 429),
)
async def resend_verification(
    payload: ResendRequest, request: Request, session: Session, settings: AppSettings
) -> Envelope[None]:
    await throttle(request, Action.EMAIL, account=str(payload.verification_id))
    await service.resend_verification(session, settings, payload.verification_id)
    return Envelope(
        status_code=202, message="If the sign-up is pending, a new code is on its way", data=None
    )


@auth_router.post(
    "/login",
    summary="Sign in with email or phone and password",
    description="With 2FA on, answers `two_factor_required` and a `challenge_token` for "
    "`POST /auth/login/2fa` instead of tokens.",
    responses=error_responses(401, 403, 422, 429),
)
async def login(
    payload: LoginRequest,
    request: Request,
    database: DatabaseDependency,
    session: Session,
    settings: AppSettings,
) -> SignInOut:
    credentials = await service.read_credentials(database, email=payload.email, phone=payload.phone)
    await throttle(request, Action.LOGIN, account=credentials.throttle_account)
    result = await service.login(session, settings, credentials, payload.password)
    if isinstance(result, service.TwoFactorChallenge):
        message = "Password accepted; send a two-factor code to POST /auth/login/2fa"
        return Envelope(message=message, data=sign_in_out(result))
    return Envelope(message="Signed in", data=sign_in_out(result))


@auth_router.post(
    "/login/2fa",
    summary="Finish a 2FA sign-in with a TOTP or recovery code",
    responses=error_responses(401, 403, 422, 429),
)
async def login_two_factor(
    payload: TwoFactorLoginRequest, request: Request, session: Session, settings: AppSettings
) -> Envelope[TokensOut]:
    user_id = service.challenge_subject(settings, payload.challenge_token)
    await throttle(request, Action.CODE, account=f"user:{user_id}")
    signed_in = await service.complete_two_factor_login(
        session, settings, payload.challenge_token, payload.code
    )
    return Envelope(message="Signed in", data=TokensOut.of(signed_in))


@auth_router.post(
    "/token/refresh",
    summary="Trade a refresh token for new tokens (each refresh token works once)",
    responses=error_responses(401, 403, 422),
)
async def refresh(
    payload: RefreshRequest, session: Session, settings: AppSettings
) -> Envelope[RefreshedOut]:
    tokens = await sessions.rotate_refresh_token(session, settings, payload.refresh_token)
    return Envelope(
        message="Tokens refreshed",
        data=RefreshedOut(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
        ),
    )


@auth_router.post(
    "/logout",
    summary="End this session: its access and refresh tokens stop working at once",
    responses=error_responses(401, 403),
)
async def logout(principal: UserPrincipal, session: Session) -> Envelope[None]:
    if principal.session_id is not None:
        await sessions.revoke_session(session, principal.session_id, "logout")
    return Envelope(message="Signed out", data=None)


@auth_router.post(
    "/password/reset/request",
    status_code=202,
    summary="Email a password reset code (the answer is the same whether the account exists)",
    responses=error_responses(422, 429),
)
async def request_password_reset(
    payload: PasswordResetRequest, request: Request, session: Session, settings: AppSettings
) -> Envelope[None]:
    await throttle(request, Action.EMAIL, account=payload.email)
    await service.request_password_reset(session, settings, payload.email)
    return Envelope(
        status_code=202, message="If the account exists, a code is on its way", data=None
    )


@auth_router.post(
    "/password/reset/confirm",
    summary="Set a new password with the emailed code; every session ends",
    responses=error_responses(400, 403, 422, 429),
)
async def confirm_password_reset(
    payload: PasswordResetConfirm,
    request: Request,
    session: Session,
    settings: AppSettings,
) -> Envelope[None]:
    await throttle(request, Action.CODE, account=payload.email)
    await service.reset_password(
        session, settings, email=payload.email, code=payload.code, new_password=payload.new_password
    )
    return Envelope(message="Password changed; sign in", data=None)


@auth_router.post(
    "/step-up",
    summary="Prove it is you again (password, or a 2FA code when 2FA is on): unlocks "
    "sensitive actions on this session for COFFER_STEP_UP_TTL_SECONDS",
    responses=error_responses(401, 403, 409, 422, 429),
)
async def step_up(
    payload: StepUpRequest,
    request: Request,
    principal: UserPrincipalApart,
    database: DatabaseDependency,
    session: Session,
    settings: AppSettings,
) -> Envelope[None]:
    account = f"user:{principal.user_id}"
    await throttle(request, Action.CODE if payload.code else Action.LOGIN, account=account)
    if principal.session_id is None:
        raise service.InvalidCredentials()
    await service.step_up(
        database,
        session,
        settings,
        user_id=principal.user_id,
        session_id=principal.session_id,
        password=payload.password,
        code=payload.code,
    )
    return Envelope(message="Stepped up", data=None)


@auth_router.post(
    "/password/change",
    summary="Change the password (needs a step-up); the user's other sessions end",
    responses=error_responses(401, 403, 409, 422, 429),
)
async def change_password(
    payload: PasswordChangeRequest,
    request: Request,
    principal: StepUpApart,
    database: DatabaseDependency,
    session: Session,
    settings: AppSettings,
) -> Envelope[None]:
    await throttle(request, Action.LOGIN, account=f"user:{principal.user_id}")
    await service.change_password(
        session,
        settings,
        credentials=await service.read_user_credentials(database, principal.user_id),
        session_id=principal.session_id,
        current_password=payload.current_password,
        new_password=payload.new_password,
    )
    return Envelope(message="Password changed", data=None)


@auth_router.post(
    "/2fa/setup",
    summary="Start 2FA (needs a step-up): a new TOTP secret, its otpauth:// URI and QR code",
    description="2FA is on only once `POST /auth/2fa/enable` confirms a code from it.",
    responses=error_responses(401, 403, 409),
)
async def setup_two_factor(
    principal: StepUp, session: Session, settings: AppSettings
) -> Envelope[TwoFactorSetupOut]:
    setup = await service.setup_two_factor(session, settings, principal.user_id)
    return Envelope(
        message="Scan the code, then confirm with POST /auth/2fa/enable",
        data=TwoFactorSetupOut(secret=setup.secret, otpauth_uri=setup.uri, qr_svg=setup.qr_svg),
    )


@auth_router.post(
    "/2fa/enable",
    summary="Turn 2FA on (needs a step-up) with a first code; answers the 10 recovery codes",
    responses=error_responses(401, 403, 409, 422, 429),
)
async def enable_two_factor(
    payload: TwoFactorEnableRequest,
    request: Request,
    principal: StepUp,
    session: Session,
    settings: AppSettings,
) -> Envelope[RecoveryCodesOut]:
    await throttle(request, Action.CODE, account=f"user:{principal.user_id}")
    recovery_codes = await totp.enable(session, settings, principal.user_id, payload.code)
    return Envelope(
        message="Two-factor authentication is on; keep the recovery codes safe",
        data=RecoveryCodesOut(recovery_codes=recovery_codes),
    )


@auth_router.post(
    "/2fa/disable",
    summary="Turn 2FA off (needs a step-up) with the password and a TOTP or recovery code",
    responses=error_responses(401, 403, 409, 422, 429),
)
async def disable_two_factor(
    payload: TwoFactorDisableRequest,
    request: Request,
    principal: StepUpApart,
    database: DatabaseDependency,
    session: Session,
    settings: AppSettings,
) -> Envelope[None]:
    await throttle(request, Action.LOGIN, account=f"user:{principal.user_id}")
    await throttle(request, Action.CODE, account=f"user:{principal.user_id}")
    await service.disable_two_factor(
        database, session, settings, principal.user_id, payload.password, payload.code
    )
    return Envelope(message="Two-factor authentication is off", data=None)


@auth_router.get(
    "/google",
    status_code=302,
    response_class=RedirectResponse,
    summary="Sign in with Google: redirects to Google (state, nonce, PKCE S256)",
    responses={
        302: {"description": "To the provider's consent page"},
        **error_responses(404, 502),
    },
)
async def google_sign_in(
    session: WriteSession, settings: AppSettings, client: GoogleClient
) -> RedirectResponse:
    url = await google.authorization_url(session, settings, client)
    return RedirectResponse(url, status_code=302)


@auth_router.get(
    "/google/callback",
    summary="Where Google returns: signs the user in (creating or linking the account)",
    responses=error_responses(400, 401, 403, 404, 502),
)
async def google_callback(
    session: WriteSession,
    settings: AppSettings,
    client: GoogleClient,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> SignInOut:
    profile = await google.finish(session, settings, client, code=code, state=state, error=error)
    result = await service.sign_in_with_google(session, settings, profile)
    return Envelope(message="Signed in with Google", data=sign_in_out(result))
