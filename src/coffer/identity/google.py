"""Google sign-in: the OpenID Connect code flow with state, nonce and PKCE (S256).

The client side is authlib's. What a cookie-based app would keep in the browser session (state,
nonce, PKCE verifier) is kept in `oauth_states`, keyed by a hash of the state and deleted by the
callback that presents it: a state works once, and any API process can finish a flow another
began. The id_token is checked against the provider's JWKS (signature by `kid`), issuer,
audience, expiry and nonce by authlib, and `email_verified` here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError, RecordedRefusal
from coffer.kit.clock import utcnow
from coffer.kit.crypto import keyed_hash, seal, unseal
from coffer.models import OAuthState
from coffer.settings import Settings

log = structlog.get_logger(__name__)

PROVIDER = "google"
SCOPES = "openid email profile"
GOOGLE_ISSUER = "https://accounts.google.com"
ID_TOKEN_LEEWAY_SECONDS = 60
MAX_STATE_LENGTH = 128
MAX_CODE_LENGTH = 2048


class ProviderNotConfigured(AppError):
    code = "provider_not_configured"
    http_status = 404
    default_message = "Google sign-in is not configured on this server"


class InvalidOAuthState(AppError):
    code = "invalid_oauth_state"
    http_status = 400
    default_message = "The sign-in request is unknown, expired or already used; start again"


class GoogleSignInFailed(RecordedRefusal):
    code = "google_sign_in_failed"
    http_status = 401
    default_message = "Google sign-in failed; start again"


class ProviderUnavailable(RecordedRefusal):
    code = "provider_unavailable"
    http_status = 502
    default_message = "The sign-in provider could not be reached; try again"


class EmailNotVerified(RecordedRefusal):
    code = "email_not_verified"
    http_status = 403
    default_message = "Google has not verified this email address"


@dataclass(frozen=True, slots=True)
class GoogleProfile:
    subject: str
    email: str
    first_name: str | None
    last_name: str | None


def build_client(settings: Settings) -> StarletteOAuth2App | None:
    """The authlib client for the configured provider, or None when sign-in is off."""
    if not settings.google_client_id or settings.google_client_secret is None:
        return None
    issuer = settings.google_issuer.rstrip("/")
    client = OAuth().register(
        PROVIDER,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret.get_secret_value(),
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPES,
            "code_challenge_method": "S256",
            "timeout": settings.google_http_timeout_seconds,
        },
    )
    if not isinstance(client, StarletteOAuth2App):
        raise TypeError("authlib built an unexpected client type")
    return client


def _state_hash(settings: Settings, state: str) -> str:
    return keyed_hash(settings, "oauth-state", state)


async def _metadata(client: StarletteOAuth2App, settings: Settings) -> dict[str, Any]:
    try:
        metadata: dict[str, Any] = await client.load_server_metadata()
    except (httpx.HTTPError, ValueError) as error:
        log.warning("google.discovery_failed", error_type=type(error).__name__)
        raise ProviderUnavailable() from error
    # Discovery must describe the issuer we trust, or its keys and endpoints mean nothing.
    if metadata.get("issuer", "").rstrip("/") != settings.google_issuer.rstrip("/"):
        log.error("google.issuer_mismatch")
        raise ProviderUnavailable("The sign-in provider's discovery document is not valid")
    return metadata


async def authorization_url(
    session: AsyncSession, settings: Settings, client: StarletteOAuth2App
) -> str:
    """Start a sign-in: remember state, nonce and verifier; the URL to send the browser to."""
    await _metadata(client, settings)
    now = utcnow()
    await session.execute(delete(OAuthState).where(OAuthState.expires_at <= now))
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    state_hash = _state_hash(settings, state)
    request = await client.create_authorization_url(
        settings.google_redirect_uri, state=state, nonce=nonce, code_verifier=verifier
    )
    session.add(
        OAuthState(
            state_hash=state_hash,
            nonce=nonce,
            code_verifier_sealed=seal(settings, verifier, context=f"oauth:{state_hash}"),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.oauth_state_ttl_seconds),
        )
    )
    await session.flush()
    return str(request["url"])


async def _take_state(session: AsyncSession, settings: Settings, state: str) -> tuple[str, str]:
    """The flow's nonce and verifier; the state is deleted so it can never be used again."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise InvalidOAuthState()
    state_hash = _state_hash(settings, state)
    row = (
        await session.execute(
            delete(OAuthState)
            .where(OAuthState.state_hash == state_hash)
            .returning(OAuthState.nonce, OAuthState.code_verifier_sealed, OAuthState.expires_at)
        )
    ).one_or_none()
    if row is None:
        raise InvalidOAuthState()
    nonce, sealed, expires_at = row
    if expires_at <= utcnow():
        raise GoogleSignInFailed("The sign-in took too long; start again")
    return nonce, unseal(settings, sealed, context=f"oauth:{state_hash}")


def _allowed_issuers(settings: Settings) -> list[str]:
    issuer = settings.google_issuer.rstrip("/")
    # Google signs some id_tokens with the scheme-less issuer; its documentation allows both.
    return [issuer, "accounts.google.com"] if issuer == GOOGLE_ISSUER else [issuer]


async def finish(
    session: AsyncSession,
    settings: Settings,
    client: StarletteOAuth2App,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
) -> GoogleProfile:
    """Finish a sign-in from the callback's parameters: the verified Google profile."""
    nonce, verifier = await _take_state(session, settings, state or "")
    if error:
        raise GoogleSignInFailed("Google sign-in was cancelled or refused")
    if not code or len(code) > MAX_CODE_LENGTH:
        raise GoogleSignInFailed("The callback carries no authorization code")
    await _metadata(client, settings)
    try:
        token = await client.fetch_access_token(
            redirect_uri=settings.google_redirect_uri, code=code, code_verifier=verifier
        )
    except httpx.HTTPError as failure:
        log.warning("google.token_request_failed", error_type=type(failure).__name__)
        raise ProviderUnavailable() from failure
    except AuthlibBaseError as failure:
        log.warning("google.code_refused", error=getattr(failure, "error", None))
        raise GoogleSignInFailed() from failure
    if "id_token" not in token:
        raise GoogleSignInFailed("The provider returned no id_token")
    try:
        claims = await client.parse_id_token(
            token,
            nonce=nonce,
            # authlib checks `aud` only when told to (otherwise only through `azp`): a token
            # issued to another client must never sign anyone in here.
            claims_options={
                "iss": {"essential": True, "values": _allowed_issuers(settings)},
                "aud": {"essential": True, "values": [client.client_id]},
            },
            leeway=ID_TOKEN_LEEWAY_SECONDS,
        )
    except httpx.HTTPError as failure:
        log.warning("google.jwks_failed", error_type=type(failure).__name__)
        raise ProviderUnavailable() from failure
    except (AuthlibBaseError, JoseError, ValueError, KeyError) as failure:
        log.warning("google.id_token_refused", error_type=type(failure).__name__)
        raise GoogleSignInFailed() from failure
    return _profile(claims)


def _profile(claims: dict[str, Any]) -> GoogleProfile:
    email = claims.get("email")
    subject = claims.get("sub")
    if not isinstance(email, str) or not isinstance(subject, str) or not subject:
        raise GoogleSignInFailed("The id_token names no email")
    if claims.get("email_verified") not in (True, "true"):
        raise EmailNotVerified()
    given, family = claims.get("given_name"), claims.get("family_name")
    return GoogleProfile(
        subject=subject,
        email=email,
        first_name=given[:100] if isinstance(given, str) and given else None,
        last_name=family[:100] if isinstance(family, str) and family else None,
    )
