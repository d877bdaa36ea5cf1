"""The admin API under /admin: admins only, through a Bearer session, never an API key.

In production an admin without 2FA is refused outright; every mutating route needs a current
code in `X-2FA-Code` when the admin has 2FA (`coffer.auth.two_factor`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from coffer.admin import users, wallets
from coffer.admin.schemas import (
    AdjustmentCreate,
    AdjustmentOut,
    AuditEventOut,
    AuditPage,
    DeadJobOut,
    DeadJobPage,
    LedgerCheckOut,
    LedgerReport,
    LimitOverrideCreate,
    LimitOverrideOut,
    OptionalReasonBody,
    ReasonBody,
    SessionOut,
    UserDetailOut,
    UserPage,
    UserSummary,
    WalletStateOut,
)
from coffer.admin.service import dead_jobs, retry_dead_job
from coffer.apikeys.endpoints import listed_key
from coffer.audit.service import events_page, user_actor
from coffer.auth.principal import AdminPrincipal, Principal
from coffer.auth.two_factor import require_two_factor
from coffer.errors import AppError
from coffer.http import AppSettings, Session, error_responses
from coffer.idempotency.dependency import Idempotency, IdempotentRoute
from coffer.identity import totp
from coffer.ledger.verify import verify_ledger
from coffer.models import Role
from coffer.schemas import Envelope
from coffer.settings import Environment, Settings
from coffer.wallets import service as wallet_service
from coffer.wallets.endpoints import HistoryQuery, WalletNumber, history_page
from coffer.wallets.schemas import TransactionPage, WalletOut


class AdminRequiresTwoFactor(AppError):
    code = "admin_requires_two_factor"
    http_status = 403
    default_message = "Admins must turn on two-factor authentication first"


async def require_admin_reader(
    request: Request, principal: AdminPrincipal, session: Session
) -> Principal:
    settings: Settings = request.app.state.settings
    if settings.env is Environment.PRODUCTION and not await totp.is_enabled(
        session, principal.user_id
    ):
        raise AdminRequiresTwoFactor()
    return principal


AdminReader = Annotated[Principal, Depends(require_admin_reader)]


async def require_admin_writer(request: Request, admin: AdminReader, session: Session) -> Principal:
    return await require_two_factor(request, admin, session)


AdminWriter = Annotated[Principal, Depends(require_admin_writer)]

router = APIRouter(prefix="/admin", tags=["admin"], route_class=IdempotentRoute)
UserId = Annotated[uuid.UUID, Path(description="The user's id")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]
_READ = error_responses(401, 403, 404, 422, 429)
_WRITE = error_responses(401, 403, 404, 409, 422, 429)
_IDEMPOTENT = [Depends(Idempotency())]


@router.get("/users", summary="Find users by email, phone, name or wallet number", responses=_READ)
async def search_users(
    admin: AdminReader,
    session: Session,
    q: Annotated[str | None, Query(max_length=320)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Envelope[UserPage]:
    rows, next_cursor = await users.search(session, q, limit=limit, cursor=cursor)
    return Envelope(data=UserPage(users=[UserSummary.of(u) for u in rows], next_cursor=next_cursor))


@router.get(
    "/users/{user_id}", summary="A user's profile, wallets, sessions, keys", responses=_READ
)
async def get_user(
    user_id: UserId, admin: AdminReader, session: Session
) -> Envelope[UserDetailOut]:
    found = await users.detail(session, user_id)
    return Envelope(
        data=UserDetailOut(
            user=UserSummary.of(found.user),
            wallets=[WalletOut.of(wallet, balance) for wallet, balance in found.wallets],
            sessions=[SessionOut.of(s) for s in found.sessions],
            api_keys=[listed_key(key) for key in found.keys],
            two_factor_enabled=found.two_factor_enabled,
            limit_overrides=[LimitOverrideOut.of(o) for o in found.limit_overrides],
        )
    )


@router.post(
    "/users/{user_id}/activate",
    summary="Let a user sign in again",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def activate(
    user_id: UserId, admin: AdminWriter, session: Session, body: OptionalReasonBody | None = None
) -> Envelope[UserSummary]:
    reason = body.reason if body else None
    user = await users.set_active(
        session, user_id, active=True, actor=user_actor(admin.user_id), reason=reason
    )
    return Envelope(message="User activated", data=UserSummary.of(user))


@router.post(
    "/users/{user_id}/deactivate",
    summary="Stop a user: every session and API key ends",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def deactivate(
    user_id: UserId, body: ReasonBody, admin: AdminWriter, session: Session
) -> Envelope[UserSummary]:
    user = await users.set_active(
        session, user_id, active=False, actor=user_actor(admin.user_id), reason=body.reason
    )
    return Envelope(message="User deactivated", data=UserSummary.of(user))


@router.post(
    "/users/{user_id}/reset-2fa",
    summary="Clear a user's 2FA and end every session and key (a stolen device)",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def reset_two_factor(
    user_id: UserId, body: ReasonBody, admin: AdminWriter, session: Session, settings: AppSettings
) -> Envelope[UserSummary]:
    user = await users.reset_two_factor_by_admin(
        session, settings, user_id, actor=user_actor(admin.user_id), reason=body.reason
    )
    return Envelope(message="Two-factor authentication reset", data=UserSummary.of(user))


@router.post(
    "/users/{user_id}/grant-admin",
    summary="Make a user an admin",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def grant_admin(
    user_id: UserId, body: ReasonBody, admin: AdminWriter, session: Session
) -> Envelope[UserSummary]:
    user = await users.set_role(
        session, user_id, Role.ADMIN, actor=user_actor(admin.user_id), reason=body.reason
    )
    return Envelope(message="Admin role granted", data=UserSummary.of(user))


@router.post(
    "/users/{user_id}/revoke-admin",
    summary="Take the admin role (never the last admin's)",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def revoke_admin(
    user_id: UserId, body: ReasonBody, admin: AdminWriter, session: Session
) -> Envelope[UserSummary]:
    user = await users.set_role(
        session, user_id, Role.USER, actor=user_actor(admin.user_id), reason=body.reason
    )
    return Envelope(message="Admin role taken", data=UserSummary.of(user))


@router.post(
    "/users/{user_id}/limits",
    summary="Override a user's daily limit in one currency until an expiry",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def override_limit(
    user_id: UserId, body: LimitOverrideCreate, admin: AdminWriter, session: Session
) -> Envelope[LimitOverrideOut]:
    limit = await wallets.override_limit(
        session,
        user_id,
        kind=body.kind,
        currency=body.currency,
        raw_limit=body.limit,
        expires_at=body.expires_at,
        reason=body.reason,
        actor=user_actor(admin.user_id),
    )
    return Envelope(
        message="Limit overridden",
        data=LimitOverrideOut(
            kind=body.kind,
            currency=limit.currency.code,
            limit=limit.format(),
            expires_at=body.expires_at,
        ),
    )


@router.get("/users/{user_id}/transactions", summary="A user's wallet history", responses=_READ)
async def user_transactions(
    user_id: UserId,
    admin: AdminReader,
    session: Session,
    query: HistoryQuery,
    wallet: Annotated[str | None, Query(max_length=32, description="Default: primary")] = None,
) -> Envelope[TransactionPage]:
    user = await users.get_user(session, user_id)
    chosen = (
        await wallet_service.owned_wallet(session, user.id, wallet)
        if wallet is not None
        else await wallet_service.primary_wallet(session, user.id)
    )
    return Envelope(data=await history_page(session, chosen, query))


async def _adjust(
    wallet_number: str,
    body: AdjustmentCreate,
    admin: Principal,
    session: Session,
    settings: Settings,
    *,
    credit: bool,
) -> Envelope[AdjustmentOut]:
    done = await wallets.adjust(
        session,
        settings,
        wallet_number,
        body.amount,
        credit=credit,
        reason=body.reason,
        actor=user_actor(admin.user_id),
    )
    return Envelope(
        message="Wallet credited" if credit else "Wallet debited",
        data=AdjustmentOut(
            reference=done.entry.reference,
            ledger_entry_id=done.entry.entry_id,
            wallet_number=done.wallet.number,
            amount=done.amount.format(),
            currency=done.wallet.currency,
            balance=done.balance.format(),
        ),
    )


@router.post(
    "/wallets/{wallet_number}/credit",
    summary="Credit a wallet from system:adjustments:<ccy>",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def credit_wallet(
    wallet_number: WalletNumber,
    body: AdjustmentCreate,
    admin: AdminWriter,
    session: Session,
    settings: AppSettings,
) -> Envelope[AdjustmentOut]:
    return await _adjust(wallet_number, body, admin, session, settings, credit=True)


@router.post(
    "/wallets/{wallet_number}/debit",
    summary="Debit a wallet into system:adjustments:<ccy>",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def debit_wallet(
    wallet_number: WalletNumber,
    body: AdjustmentCreate,
    admin: AdminWriter,
    session: Session,
    settings: AppSettings,
) -> Envelope[AdjustmentOut]:
    return await _adjust(wallet_number, body, admin, session, settings, credit=False)


@router.post(
    "/wallets/{wallet_number}/freeze",
    summary="Stop every deposit, transfer and withdrawal, in or out",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def freeze_wallet(
    wallet_number: WalletNumber,
    body: ReasonBody,
    admin: AdminWriter,
    session: Session,
    settings: AppSettings,
) -> Envelope[WalletStateOut]:
    wallet = await wallets.freeze(
        session, settings, wallet_number, reason=body.reason, actor=user_actor(admin.user_id)
    )
    return Envelope(
        message="Wallet frozen",
        data=WalletStateOut(wallet_number=wallet.number, status=wallet.status),
    )


@router.post(
    "/wallets/{wallet_number}/unfreeze",
    summary="Let a frozen wallet move money again",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def unfreeze_wallet(
    wallet_number: WalletNumber,
    body: ReasonBody,
    admin: AdminWriter,
    session: Session,
    settings: AppSettings,
) -> Envelope[WalletStateOut]:
    wallet = await wallets.unfreeze(
        session, settings, wallet_number, reason=body.reason, actor=user_actor(admin.user_id)
    )
    return Envelope(
        message="Wallet unfrozen",
        data=WalletStateOut(wallet_number=wallet.number, status=wallet.status),
    )


@router.get("/ledger/verify", summary="Check every ledger invariant", responses=_READ)
async def ledger_verify(admin: AdminReader, session: Session) -> Envelope[LedgerReport]:
    checks = await verify_ledger(session)
    return Envelope(
        data=LedgerReport(
            ok=all(c.ok for c in checks),
            checks=[
                LedgerCheckOut(name=c.name, ok=c.ok, violations=c.violations, detail=c.detail)
                for c in checks
            ],
        )
    )


@router.get("/jobs/dead", summary="Jobs that gave up after their last attempt", responses=_READ)
async def list_dead_jobs(
    admin: AdminReader, session: Session, limit: Limit = 20, cursor: Cursor = None
) -> Envelope[DeadJobPage]:
    rows, next_cursor = await dead_jobs(session, limit=limit, cursor=cursor)
    return Envelope(
        data=DeadJobPage(jobs=[DeadJobOut.of(j) for j in rows], next_cursor=next_cursor)
    )


@router.post(
    "/jobs/{job_id}/retry",
    summary="Give a dead job fresh attempts, due now",
    responses=_WRITE,
    dependencies=_IDEMPOTENT,
)
async def retry_job(
    job_id: Annotated[int, Path(description="The dead job's id", ge=1)],
    admin: AdminWriter,
    session: Session,
) -> Envelope[None]:
    await retry_dead_job(session, job_id, actor=user_actor(admin.user_id))
    return Envelope(message="Job queued again", data=None)


@router.get("/audit", summary="The audit log, newest first", responses=_READ)
async def audit_log(
    admin: AdminReader,
    session: Session,
    limit: Limit = 50,
    cursor: Cursor = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Events about this user")] = None,
) -> Envelope[AuditPage]:
    rows, next_cursor = await events_page(
        session, limit=limit, cursor=cursor, subject_user_id=user_id
    )
    return Envelope(
        data=AuditPage(events=[AuditEventOut.of(e) for e in rows], next_cursor=next_cursor)
    )
