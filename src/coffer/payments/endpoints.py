"""Payments routes: deposits, withdrawals, payout destinations, saved cards, provider webhooks.

Deposits and new payout destinations call the provider, which must not happen inside a
transaction: those routes end the request's own unit of work (authentication, the second
factor) before the service opens its own, as the transfer route does before batching.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from coffer.auth.principal import Depositor, Reader, Withdrawer
from coffer.auth.step_up import StepUp
from coffer.auth.two_factor import SecondFactor
from coffer.errors import AppError
from coffer.http import (
    AppSettings,
    DatabaseDependency,
    ExactJSONRoute,
    Session,
    error_responses,
)
from coffer.idempotency.dependency import REPLAYED_HEADER, Idempotency, IdempotentRoute
from coffer.payments import deposits, destinations, inbox, withdrawals
from coffer.payments.providers.registry import ProviderRegistry, providers_for
from coffer.payments.schemas import (
    BankOut,
    CardOut,
    DepositCreate,
    DepositStarted,
    DepositStatusOut,
    DestinationCreate,
    DestinationOut,
    WithdrawalCreate,
    WithdrawalOut,
)
from coffer.schemas import Envelope
from coffer.transfers.endpoints import IdempotencyKeyHeader

router = APIRouter(tags=["payments"], route_class=ExactJSONRoute)
withdraw_router = APIRouter(
    tags=["payments"],
    route_class=IdempotentRoute,
    dependencies=[Depends(Idempotency())],
)
webhook_router = APIRouter(tags=["webhooks"])

_MONEY_ERRORS = error_responses(400, 401, 403, 404, 409, 422, 429, 502, 503)
_READ_ERRORS = error_responses(401, 403, 404, 422, 429)
Reference = Annotated[str, Path(max_length=64)]


async def get_providers(database: DatabaseDependency, settings: AppSettings) -> ProviderRegistry:
    return providers_for(database, settings)


Providers = Annotated[ProviderRegistry, Depends(get_providers)]


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    http_status = 413
    default_message = "The request body is too large"


@router.post("/wallet/deposit", status_code=201, summary="Start a deposit", responses=_MONEY_ERRORS)
async def deposit(
    body: DepositCreate,
    principal: Depositor,
    session: Session,
    database: DatabaseDependency,
    settings: AppSettings,
    providers: Providers,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Envelope[DepositStarted]:
    # The provider is called between two units of work of the service's own.
    await session.commit()
    view, replayed = await deposits.start_deposit(
        database,
        settings,
        providers,
        deposits.DepositStart(
            user_id=principal.user_id,
            amount=body.amount,
            currency=body.currency,
            callback_url=body.callback_url,
            saved_card_id=body.saved_card_id,
            idempotency_key=idempotency_key,
        ),
    )
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return Envelope(status_code=201, message="Deposit started", data=DepositStarted.of(view))


@router.get(
    "/wallet/deposit/{reference}/status", summary="A deposit's status", responses=_READ_ERRORS
)
async def deposit_status(
    reference: Reference, principal: Reader, session: Session
) -> Envelope[DepositStatusOut]:
    view = await deposits.deposit_status(session, principal.user_id, reference)
    return Envelope(message=f"Deposit {view.status}", data=DepositStatusOut.of(view))


@withdraw_router.post(
    "/wallet/withdraw",
    status_code=202,
    summary="Withdraw to a payout destination",
    responses=_MONEY_ERRORS,
)
async def withdraw(
    body: WithdrawalCreate,
    principal: Withdrawer,
    _: SecondFactor,
    session: Session,
    settings: AppSettings,
) -> Envelope[WithdrawalOut]:
    view = await withdrawals.request_withdrawal(
        session,
        settings,
        principal,
        amount=body.amount,
        destination_id=body.destination_id,
        narration=body.narration,
    )
    return Envelope(status_code=202, message="Withdrawal accepted", data=WithdrawalOut.of(view))


@router.get(
    "/wallet/withdrawals/{reference}/status",
    summary="A withdrawal's status",
    responses=_READ_ERRORS,
)
async def withdrawal_status(
    reference: Reference, principal: Reader, session: Session
) -> Envelope[WithdrawalOut]:
    view = await withdrawals.withdrawal_status(session, principal.user_id, reference)
    return Envelope(message=f"Withdrawal {view.status}", data=WithdrawalOut.of(view))


@router.get("/banks", summary="Banks that payouts can go to", responses=_READ_ERRORS)
async def banks(
    _: Reader,
    settings: AppSettings,
    providers: Providers,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> Envelope[list[BankOut]]:
    found = await destinations.list_banks(providers, settings, currency)
    return Envelope(data=[BankOut.of(bank) for bank in found])


@router.post(
    "/payout-destinations",
    status_code=201,
    summary="Add a bank account to withdraw to (signed in and stepped up; X-2FA-Code with 2FA)",
    responses=_MONEY_ERRORS,
)
async def add_destination(
    body: DestinationCreate,
    principal: Withdrawer,
    _stepped_up: StepUp,
    _: SecondFactor,
    session: Session,
    database: DatabaseDependency,
    settings: AppSettings,
    providers: Providers,
) -> Envelope[DestinationOut]:
    # Commit the second factor's use first: the provider is called outside any transaction.
    await session.commit()
    destination = await destinations.add_destination(
        database,
        settings,
        providers,
        principal.user_id,
        bank_code=body.bank_code,
        account_number=body.account_number,
        currency=body.currency,
    )
    return Envelope(
        status_code=201, message="Destination saved", data=DestinationOut.of(destination)
    )


@router.get("/payout-destinations", summary="Your payout destinations", responses=_READ_ERRORS)
async def list_destinations(principal: Reader, session: Session) -> Envelope[list[DestinationOut]]:
    found = await destinations.list_destinations(session, principal.user_id)
    return Envelope(data=[DestinationOut.of(d) for d in found])


@router.delete(
    "/payout-destinations/{destination_id}",
    summary="Remove a payout destination",
    responses=_READ_ERRORS,
)
async def delete_destination(
    destination_id: int, principal: Withdrawer, session: Session
) -> Envelope[None]:
    await destinations.delete_destination(session, principal.user_id, destination_id)
    return Envelope(message="Destination removed", data=None)


@router.get("/cards", summary="Your saved cards", responses=_READ_ERRORS)
async def list_cards(principal: Reader, session: Session) -> Envelope[list[CardOut]]:
    found = await destinations.list_cards(session, principal.user_id)
    return Envelope(data=[CardOut.of(card) for card in found])


@router.delete("/cards/{card_id}", summary="Forget a saved card", responses=_READ_ERRORS)
async def delete_card(card_id: int, principal: Depositor, session: Session) -> Envelope[None]:
    await destinations.delete_card(session, principal.user_id, card_id)
    return Envelope(message="Card removed", data=None)


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > inbox.MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > inbox.MAX_WEBHOOK_BYTES:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


@webhook_router.post(
    "/wallet/{provider}/webhook",
    summary="Provider webhooks (Paystack, Stripe, the sandbox): signed, applied once",
    responses=error_responses(400, 401, 404, 413),
)
async def provider_webhook(
    provider: Literal["paystack", "stripe", "sandbox"],
    request: Request,
    session: Session,
    settings: AppSettings,
    providers: Providers,
) -> JSONResponse:
    raw_body = await _raw_body(request)
    await inbox.receive(session, settings, providers.get(provider), raw_body, request.headers)
    # Providers only read the status code; Paystack's own examples answer this body.
    return JSONResponse({"status": True})
