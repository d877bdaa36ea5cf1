"""Reconciliation and races: a lost webhook is caught, an unpaid checkout is abandoned, and a
deposit credits once however many deliveries and verifications race for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from coffer.db import Database
from coffer.kit.clock import utcnow
from coffer.models import Deposit
from coffer.payments import inbox, sandbox_repository
from coffer.payments.providers.sandbox import charge_event_body
from tests.fixtures.http import Caller
from tests.payments.conftest import Payments, charge_event

SignIn = Callable[..., Awaitable[Caller]]
LATER = timedelta(seconds=601)


async def _paid_at_the_provider_only(payments: Payments, reference: str) -> bytes:
    """The payer paid, but the webhook never arrived; returns the body it would have had."""
    async with payments.database.transaction() as session:
        assert await sandbox_repository.settle_sandbox_charge(
            session, reference, "success", paid_at=utcnow(), authorization_code=None
        )
        charge = await sandbox_repository.sandbox_charge(session, reference)
    assert charge is not None
    return charge_event_body(charge)


async def test_a_lost_webhook_is_caught_by_reconciliation(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "40.00")
    await _paid_at_the_provider_only(payments, reference)

    too_early = await payments.reconcile(timedelta(0))
    assert too_early.deposits_settled == 0
    assert await payments.balance(caller) == "0.00"

    report = await payments.reconcile(LATER)

    assert report.deposits_settled >= 1
    assert await payments.balance(caller) == "40.00"
    assert (await payments.history(caller, reference))["status"] == "success"
    # The webhook arriving late changes nothing.
    raw, headers = payments.signed(charge_event(reference, 4_000))
    assert (await payments.post_webhook(raw, headers)).status_code == 200
    assert await payments.balance(caller) == "40.00"
    await payments.assert_ledger_sound()


async def test_an_unpaid_checkout_is_abandoned_after_the_abandon_delay(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "3.00")

    await payments.reconcile(LATER)
    assert (await payments.deposit_status(caller, reference))["status"] == "pending"

    abandon_after = timedelta(seconds=payments.settings.deposit_abandon_after_seconds + 1)
    await payments.reconcile(abandon_after)

    assert (await payments.deposit_status(caller, reference))["status"] == "abandoned"
    row = await payments.history(caller, reference)
    assert (row["status"], row["failure_reason"]) == ("failed", "abandoned")
    # Paying the abandoned checkout afterwards credits nothing automatically: it is reviewed.
    raw, headers = payments.signed(charge_event(reference, 300))
    await payments.post_webhook(raw, headers)
    assert await payments.balance(caller) == "0.00"
    assert await payments.review_reasons(f"charge.success:{reference}") == ["deposit_closed"]


async def _deliver(
    database: Database, payments: Payments, raw: bytes, headers: dict[str, str]
) -> None:
    async with database.transaction() as session:
        await inbox.receive(
            session, payments.settings, payments.providers.get("sandbox"), raw, headers
        )


async def test_a_webhook_racing_reconciliation_credits_once(
    payments: Payments, sign_in: SignIn
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "60.00")
    raw = await _paid_at_the_provider_only(payments, reference)
    headers = payments.signed_headers(raw)

    await asyncio.gather(
        _deliver(payments.database, payments, raw, headers), payments.reconcile(LATER)
    )

    assert await payments.balance(caller) == "60.00"
    await payments.assert_ledger_sound()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_twenty_concurrent_deliveries_of_one_event_credit_once(
    payments: Payments, sign_in: SignIn, database_url: str
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "75.00")
    raw, headers = payments.signed(charge_event(reference, 7_500))
    # Twenty real connections, each delivering in its own transaction at once.
    database = Database(database_url, pool_size=20)
    try:
        results = await asyncio.gather(
            *(_deliver(database, payments, raw, headers) for _ in range(20)),
            return_exceptions=True,
        )
    finally:
        await database.dispose()

    assert [r for r in results if r is not None] == []
    assert await payments.balance(caller) == "75.00"
    assert len(await payments.inbox(f"charge.success:{reference}")) == 1
    async with payments.database.transaction() as session:
        status = await session.scalar(select(Deposit.status).where(Deposit.reference == reference))
    assert status == "success"
    await payments.assert_ledger_sound()


async def test_many_reconciliations_and_webhooks_racing_credit_once(
    payments: Payments, sign_in: SignIn, database_url: str
) -> None:
    caller = await sign_in()
    reference = await payments.started(caller, "8.00")
    raw = await _paid_at_the_provider_only(payments, reference)
    headers = payments.signed_headers(raw)
    database = Database(database_url, pool_size=10)
    try:
        await asyncio.gather(
            *(_deliver(database, payments, raw, headers) for _ in range(5)),
            *(payments.reconcile(LATER) for _ in range(5)),
        )
    finally:
        await database.dispose()

    assert await payments.balance(caller) == "8.00"
    await payments.assert_ledger_sound()
