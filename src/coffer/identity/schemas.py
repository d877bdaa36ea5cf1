"""Request and response bodies of the auth and account routes.

Secrets arrive with their surrounding whitespace kept (a password is what was typed) and are
never echoed: validation errors carry field paths only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from coffer.identity.service import Account, SignedIn, TwoFactorChallenge
from coffer.schemas import RequestSchema, Schema, UtcDateTime

BEARER: Literal["bearer"] = "bearer"

# Length policy (10+) is the service's, answered as `weak_password`; this only bounds the input.
Secret = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]
EmailField = Annotated[str, StringConstraints(min_length=3, max_length=320)]
PhoneField = Annotated[str, StringConstraints(min_length=3, max_length=32)]
NameField = Annotated[str, StringConstraints(min_length=1, max_length=100)]
SixDigits = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
SecondFactorCode = Annotated[str, StringConstraints(min_length=6, max_length=16)]
"""A 6-digit TOTP code or a recovery code (XXXXX-XXXXX)."""


_http_url = TypeAdapter(HttpUrl)


def _https_only(value: str) -> str:
    url = _http_url.validate_python(value)
    if url.scheme != "https":
        raise ValueError("the URL must use https")
    return str(url)


HttpsUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https_only)]


class RegisterRequest(RequestSchema):
    email: EmailField
    phone: PhoneField | None = None
    password: Secret
    first_name: NameField | None = None
    last_name: NameField | None = None


class PendingVerificationOut(Schema):
    verification_id: uuid.UUID
    email: str
    expires_in: int = Field(description="Seconds the emailed code stays valid")


class VerifyRequest(RequestSchema):
    verification_id: uuid.UUID
    code: SixDigits


class ResendRequest(RequestSchema):
    verification_id: uuid.UUID


class LoginRequest(RequestSchema):
    email: EmailField | None = None
    phone: PhoneField | None = None
    password: Secret

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give either email or phone")
        return self


class TwoFactorLoginRequest(RequestSchema):
    challenge_token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    code: SecondFactorCode


class RefreshRequest(RequestSchema):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PasswordResetRequest(RequestSchema):
    email: EmailField


class PasswordResetConfirm(RequestSchema):
    email: EmailField
    code: SixDigits
    new_password: Secret


class PasswordChangeRequest(RequestSchema):
    current_password: Secret
    new_password: Secret


class PasswordRequest(RequestSchema):
    password: Secret


class TwoFactorEnableRequest(RequestSchema):
    code: SixDigits


class StepUpRequest(RequestSchema):
    """The password, or (when 2FA is on) a TOTP or recovery code."""

    password: Secret | None = None
    code: SecondFactorCode | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> Self:
        if (self.password is None) == (self.code is None):
            raise ValueError("give either password or code")
        return self


class PhoneRequest(RequestSchema):
    phone: PhoneField


class EmailChangeRequest(RequestSchema):
    email: EmailField


class CodeRequest(RequestSchema):
    code: SixDigits


class PendingChangeOut(Schema):
    address: str = Field(description="Where the code went (normalised)")
    expires_in: int = Field(description="Seconds the code stays valid")


class TwoFactorDisableRequest(RequestSchema):
    password: Secret
    code: SecondFactorCode


class ProfileUpdate(RequestSchema):
    """Only the fields sent change; null clears one."""

    first_name: NameField | None = None
    last_name: NameField | None = None
    profile_image_url: HttpsUrl | None = None


class UserSummary(Schema):
    id: uuid.UUID
    email: str
    phone: str | None
    name: str
    first_name: str | None
    last_name: str | None
    role: str
    wallet_number: str | None

    @classmethod
    def of(cls, account: Account) -> UserSummary:
        user = account.user
        return cls(
            id=user.id,
            email=user.email,
            phone=user.phone,
            name=user.display_name,
            first_name=user.first_name,
            last_name=user.last_name,
            role=user.role,
            wallet_number=account.wallet_number,
        )


class TokensOut(Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = BEARER
    expires_in: int = Field(description="Seconds the access token is good for")
    user: UserSummary

    @classmethod
    def of(cls, signed_in: SignedIn) -> TokensOut:
        return cls(
            access_token=signed_in.tokens.access_token,
            refresh_token=signed_in.tokens.refresh_token,
            expires_in=signed_in.tokens.expires_in,
            user=UserSummary.of(signed_in.account),
        )


class ChallengeOut(Schema):
    two_factor_required: Literal[True] = True
    challenge_token: str
    expires_in: int = Field(description="Seconds left to send the code to /auth/login/2fa")


def sign_in_out(result: SignedIn | TwoFactorChallenge) -> TokensOut | ChallengeOut:
    if isinstance(result, SignedIn):
        return TokensOut.of(result)
    return ChallengeOut(challenge_token=result.challenge_token, expires_in=result.expires_in)


class RefreshedOut(Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = BEARER
    expires_in: int


class ProfileOut(Schema):
    id: uuid.UUID
    email: str
    phone: str | None
    first_name: str | None
    last_name: str | None
    name: str
    role: str
    is_verified: bool
    pending_email: str | None = Field(description="A new address waiting for its code")
    pending_phone: str | None = Field(description="A number waiting for its SMS code")
    two_factor_enabled: bool
    primary_wallet_number: str | None
    profile_image_url: str | None
    created_at: UtcDateTime

    @classmethod
    def of(cls, account: Account) -> ProfileOut:
        user = account.user
        created_at: datetime = user.created_at
        return cls(
            id=user.id,
            email=user.email,
            phone=user.phone,
            first_name=user.first_name,
            last_name=user.last_name,
            name=user.display_name,
            role=user.role,
            is_verified=user.is_verified,
            pending_email=user.pending_email,
            pending_phone=user.pending_phone,
            two_factor_enabled=account.two_factor_enabled,
            primary_wallet_number=account.wallet_number,
            profile_image_url=user.profile_image_url,
            created_at=created_at,
        )


class TwoFactorSetupOut(Schema):
    secret: str = Field(description="Base32, for typing into an authenticator app")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code (SVG)")


class RecoveryCodesOut(Schema):
    recovery_codes: list[str] = Field(description="Shown once: each signs in once without TOTP")
