"""Request and response shapes of the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from coffer.apikeys.schemas import ApiKeyOut
from coffer.kit.money import format_minor, get_currency
from coffer.models import AuditEvent, AuthSession, LimitOverride, OutboxJob, User
from coffer.schemas import AmountInput, AmountOutput, RequestSchema, Schema, UtcDateTime
from coffer.wallets.limits import LimitKind
from coffer.wallets.schemas import WalletOut

Reason = Field(min_length=3, max_length=500, description="Why; kept in the audit log.")


class ReasonBody(RequestSchema):
    reason: str = Reason


class OptionalReasonBody(RequestSchema):
    reason: str | None = Field(default=None, min_length=3, max_length=500)


class AdjustmentCreate(RequestSchema):
    amount: AmountInput
    reason: str = Reason


class LimitOverrideCreate(RequestSchema):
    kind: LimitKind
    currency: str = Field(min_length=3, max_length=3)
    limit: AmountInput
    expires_at: datetime
    reason: str = Reason


class UserSummary(Schema):
    id: uuid.UUID
    email: str
    phone: str | None
    first_name: str | None
    last_name: str | None
    role: str
    is_active: bool
    is_verified: bool
    created_at: UtcDateTime

    @classmethod
    def of(cls, user: User) -> UserSummary:
        return cls.model_validate(user)


class UserPage(Schema):
    users: list[UserSummary]
    next_cursor: str | None


class SessionOut(Schema):
    id: uuid.UUID
    created_at: UtcDateTime
    last_seen_at: UtcDateTime
    expires_at: UtcDateTime

    @classmethod
    def of(cls, row: AuthSession) -> SessionOut:
        return cls.model_validate(row)


class LimitOverrideOut(Schema):
    kind: str
    currency: str
    limit: AmountOutput
    expires_at: UtcDateTime

    @classmethod
    def of(cls, row: LimitOverride) -> LimitOverrideOut:
        return cls(
            kind=row.kind,
            currency=row.currency,
            limit=format_minor(row.limit_minor, get_currency(row.currency)),
            expires_at=row.expires_at,
        )


class UserDetailOut(Schema):
    user: UserSummary
    wallets: list[WalletOut]
    sessions: list[SessionOut]
    api_keys: list[ApiKeyOut]
    two_factor_enabled: bool
    limit_overrides: list[LimitOverrideOut]


class AdjustmentOut(Schema):
    reference: str
    ledger_entry_id: int
    wallet_number: str
    amount: AmountOutput
    currency: str
    balance: AmountOutput


class WalletStateOut(Schema):
    wallet_number: str
    status: str


class AuditEventOut(Schema):
    id: int
    actor: str
    subject_user_id: uuid.UUID | None
    action: str
    reason: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: UtcDateTime

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventOut:
        return cls.model_validate(row)


class AuditPage(Schema):
    events: list[AuditEventOut]
    next_cursor: str | None


class LedgerCheckOut(Schema):
    name: str
    ok: bool
    violations: int
    detail: str


class LedgerReport(Schema):
    ok: bool
    checks: list[LedgerCheckOut]


class DeadJobOut(Schema):
    id: int
    name: str
    attempts: int
    last_error: str | None
    created_at: UtcDateTime
    run_at: UtcDateTime

    @classmethod
    def of(cls, row: OutboxJob) -> DeadJobOut:
        return cls.model_validate(row)


class DeadJobPage(Schema):
    jobs: list[DeadJobOut]
    next_cursor: str | None
