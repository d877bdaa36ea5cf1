"""Transfer routes: from the primary wallet (`/wallet/transfer`, the seed contract) or from a
named wallet (`/wallets/{wallet_number}/transfer`), through one handler.

Idempotency lives on the transfer row (coffer.transfers.service): the Idempotency-Key header
or the body's idempotency_key, unique per sender; a replay answers the first response with
`Idempotent-Replayed: true`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import Principal, Reader, TransferWriter
from coffer.auth.throttle import Action, Throttle, get_throttle
from coffer.errors import AppError, ValidationFailed
from coffer.http import AppSettings, DatabaseDependency, ExactJSONRoute, Session, error_responses
from coffer.idempotency.dependency import REPLAYED_HEADER
from coffer.kit.concurrency import ConcurrencyCap
from coffer.models import TransferStatus
from coffer.schemas import Envelope
from coffer.settings import Settings
from coffer.transfers import status
from coffer.transfers.batcher import TransferBatcher
from coffer.transfers.schemas import TransferAccepted, TransferCreate, TransferStatusOut
from coffer.transfers.service import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    AcceptedTransfer,
    RecipientKind,
    RecipientNotFound,
    TransferRequest,
    create_transfers,
)

router = APIRouter(tags=["transfers"], route_class=ExactJSONRoute)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Retry safely: the same key and body replay the first response.",
    ),
]
PreferHeader = Annotated[
    str | None,
    Header(max_length=256, description="`wait=N` (N ≤ 10): wait up to N s for a final state"),
]
_TRANSFER_ERRORS = error_responses(400, 401, 403, 404, 409, 422, 429)


def get_transfer_batcher(request: Request) -> TransferBatcher | None:
    """The app's intake batcher; None when batching is off (COFFER_TRANSFER_ACCEPT_WINDOW_MS=0)."""
    batcher: TransferBatcher | None = request.app.state.transfer_batcher
    return batcher


Batcher = Annotated[TransferBatcher | None, Depends(get_transfer_batcher)]
LookupThrottle = Annotated[Throttle, Depends(get_throttle)]


async def accept_transfer(
    session: AsyncSession,
    settings: Settings,
    batcher: TransferBatcher | None,
    request: TransferRequest,
) -> AcceptedTransfer:
    """Store one transfer request: with concurrent ones in one transaction through the batcher
    (DESIGN.md §11), or, with batching off, in the request's own unit of work."""
    if batcher is None:
        (outcome,) = await create_transfers(
            session, [request], max_amount_minor=settings.max_amount_minor, settings=settings
        )
    else:
        # End the request's own unit of work (authentication) before waiting: the wait must
        # hold neither a pooled connection nor SQLite's write lock, which the batch needs.
        await session.commit()
        outcome = await batcher.submit(request)
    if isinstance(outcome, AppError):
        raise outcome
    return outcome


@asynccontextmanager
async def lookup_limited(throttle: Throttle, request: TransferRequest) -> AsyncIterator[None]:
    """Misses of lookups by email or phone are limited per user (their API keys included):
    once spent, every such lookup is refused, hits too, so nobody can probe for who has an
    account. Around every step that looks a recipient up (the API's transfer, the web app's
    confirmation and transfer)."""
    looked_up = request.recipient_kind is not RecipientKind.WALLET_NUMBER
    lookup_account = f"user:{request.sender_user_id}"
    if looked_up:
        await throttle.refuse_if_spent(Action.RECIPIENT_LOOKUP, account=lookup_account)
    try:
        yield
    except RecipientNotFound:
        if looked_up:
            await throttle.count(Action.RECIPIENT_LOOKUP, account=lookup_account)
        raise


async def _transfer(
    body: TransferCreate,
    principal: Principal,
    session: AsyncSession,
    settings: Settings,
    batcher: TransferBatcher | None,
    response: Response,
    header_key: str | None,
    sender_wallet_number: str | None,
    throttle: Throttle,
) -> Envelope[TransferAccepted]:
    if header_key is not None and body.idempotency_key not in (None, header_key):
        raise ValidationFailed("The Idempotency-Key header and idempotency_key differ")
    kind, recipient = body.recipient
    request = TransferRequest(
        sender_user_id=principal.user_id,
        recipient_kind=kind,
        recipient=recipient,
        amount=body.amount,
        sender_wallet_number=sender_wallet_number,
        narration=body.narration,
        idempotency_key=header_key or body.idempotency_key,
        quote_id=body.quote_id,
    )
    async with lookup_limited(throttle, request):
        accepted = await accept_transfer(session, settings, batcher, request)
    if accepted.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return Envelope(
        status_code=202,
        message="Transfer accepted",
        data=TransferAccepted(
            reference=accepted.reference,
            # The answer of the request that made it, replayed as it was first given.
            status=TransferStatus.PENDING,
            amount=accepted.amount.format(),
            currency=accepted.amount.currency.code,
            recipient_wallet=accepted.recipient_wallet_number,
            created_at=accepted.created_at,
            receive_amount=accepted.receive_amount.format() if accepted.receive_amount else None,
            receive_currency=(
                accepted.receive_amount.currency.code if accepted.receive_amount else None
            ),
            fx_rate=str(accepted.fx_rate) if accepted.fx_rate is not None else None,
            fee=accepted.fee.format() if accepted.fee else None,
        ),
    )


@router.post(
    "/wallet/transfer",
    status_code=202,
    summary="Send money from the primary wallet",
    responses=_TRANSFER_ERRORS,
)
async def transfer_from_primary(
    body: TransferCreate,
    principal: TransferWriter,
    session: Session,
    settings: AppSettings,
    batcher: Batcher,
    response: Response,
    throttle: LookupThrottle,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Envelope[TransferAccepted]:
    return await _transfer(
        body, principal, session, settings, batcher, response, idempotency_key, None, throttle
    )


@router.post(
    "/wallets/{wallet_number}/transfer",
    status_code=202,
    summary="Send money from one of your wallets",
    responses=_TRANSFER_ERRORS,
)
async def transfer_from_wallet(
    wallet_number: Annotated[str, Path(max_length=32)],
    body: TransferCreate,
    principal: TransferWriter,
    session: Session,
    settings: AppSettings,
    batcher: Batcher,
    response: Response,
    throttle: LookupThrottle,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Envelope[TransferAccepted]:
    return await _transfer(
        body,
        principal,
        session,
        settings,
        batcher,
        response,
        idempotency_key,
        wallet_number,
        throttle,
    )


@router.get(
    "/wallet/transfer/{reference}/status",
    summary="A transfer's status; `Prefer: wait=N` waits for a final state",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def transfer_status(
    reference: Annotated[str, Path(max_length=64)],
    principal: Reader,
    session: Session,
    database: DatabaseDependency,
    response: Response,
    request: Request,
    prefer: PreferHeader = None,
) -> Envelope[TransferStatusOut]:
    view = await status.get_status(session, principal.user_id, reference)
    wait_seconds = status.requested_wait_seconds(prefer)
    if wait_seconds and not view.is_final:
        # End the request's transaction first: the wait holds no transaction or connection.
        await session.commit()
        waits: ConcurrencyCap = request.app.state.transfer_waits
        with waits.slot(principal.scope):
            view = await status.wait_for_settlement(
                database, principal.user_id, reference, wait_seconds
            )
    if wait_seconds is not None:
        response.headers["Preference-Applied"] = f"wait={wait_seconds}"
    return Envelope(message=f"Transfer {view.status}", data=TransferStatusOut.of(view))
