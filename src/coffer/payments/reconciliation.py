"""Reconciliation: ask the provider about money still in doubt, so a lost webhook loses nothing.

Deposits pending longer than COFFER_DEPOSIT_RECONCILE_AFTER_SECONDS are verified with the
provider (outside any transaction) and completed or failed through the same settlement code
as webhooks; one the provider still calls pending after COFFER_DEPOSIT_ABANDON_AFTER_SECONDS
is abandoned. Withdrawals in flight longer than COFFER_PAYOUT_RECONCILE_AFTER_SECONDS are
verified the same way. A webhook racing this job credits once: whichever applies second finds
the deposit no longer pending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import structlog

from coffer.db import Database
from coffer.kit.clock import utcnow
from coffer.models import DepositStatus, InboxOutcome, WithdrawalStatus
from coffer.payments import repository
from coffer.payments.providers.base import Charge, Payout, ProviderError, ProviderUnavailable
from coffer.payments.providers.registry import ProviderNotConfigured, ProviderRegistry
from coffer.payments.settlement import abandon_deposit, apply_charge, apply_payout
from coffer.settings import Settings

log = structlog.get_logger(__name__)

RECONCILE_JOB = "payments.reconcile"
RECONCILE_INTERVAL = timedelta(minutes=1)
BATCH = 200
"""Rows looked at per run; the next run takes the rest."""


@dataclass(slots=True)
class ReconcileReport:
    deposits_checked: int = 0
    deposits_settled: int = 0
    deposits_abandoned: int = 0
    withdrawals_checked: int = 0
    withdrawals_settled: int = 0
    review: int = 0


async def _reconcile_deposits(
    database: Database,
    settings: Settings,
    registry: ProviderRegistry,
    now: datetime,
    report: ReconcileReport,
) -> None:
    before = now - timedelta(seconds=settings.deposit_reconcile_after_seconds)
    abandon_before = now - timedelta(seconds=settings.deposit_abandon_after_seconds)
    async with database.transaction() as session:
        deposits = await repository.pending_deposits_before(session, before, BATCH)
    for deposit in deposits:
        report.deposits_checked += 1
        charge: Charge | None = None
        try:
            charge = await registry.get(deposit.provider).verify_deposit(
                deposit.reference, deposit.provider_reference
            )
        except (ProviderError, ProviderUnavailable, ProviderNotConfigured) as error:
            # One deposit of a provider removed since must not stop every later pass.
            log.warning(
                "payments.reconcile.verify_failed", reference=deposit.reference, code=error.code
            )
        async with database.transaction() as session:
            current = await repository.deposit_by_reference(session, deposit.reference)
            if current is None or current.status != DepositStatus.PENDING:
                continue
            if charge is not None and charge.reference == current.reference:
                applied = await apply_charge(session, settings, current, charge)
                if applied.outcome is InboxOutcome.APPLIED:
                    report.deposits_settled += 1
                    continue
                if applied.outcome is InboxOutcome.REVIEW:
                    report.review += 1
                    log.warning(
                        "payments.reconcile.review",
                        reference=current.reference,
                        reason=applied.reason,
                    )
                    continue
            if current.created_at < abandon_before and await abandon_deposit(session, current):
                report.deposits_abandoned += 1


async def _reconcile_withdrawals(
    database: Database,
    registry: ProviderRegistry,
    settings: Settings,
    now: datetime,
    report: ReconcileReport,
) -> None:
    before = now - timedelta(seconds=settings.payout_reconcile_after_seconds)
    async with database.transaction() as session:
        withdrawals = await repository.withdrawals_in_flight_before(session, before, BATCH)
    for withdrawal in withdrawals:
        report.withdrawals_checked += 1
        try:
            payout: Payout = await registry.get(withdrawal.provider).verify_payout(
                withdrawal.reference
            )
        except (ProviderError, ProviderUnavailable, ProviderNotConfigured) as error:
            log.warning(
                "payments.reconcile.verify_failed", reference=withdrawal.reference, code=error.code
            )
            continue
        async with database.transaction() as session:
            current = await repository.withdrawal_by_reference(session, withdrawal.reference)
            if current is None or current.status != WithdrawalStatus.PROCESSING:
                continue
            applied = await apply_payout(session, current, payout)
            if applied.outcome is InboxOutcome.APPLIED:
                report.withdrawals_settled += 1
            elif applied.outcome is InboxOutcome.REVIEW:
                report.review += 1


async def reconcile(
    database: Database,
    settings: Settings,
    registry: ProviderRegistry,
    now: datetime | None = None,
) -> ReconcileReport:
    """One pass over deposits and withdrawals in doubt (the `payments.reconcile` job)."""
    now = now or utcnow()
    report = ReconcileReport()
    await _reconcile_deposits(database, settings, registry, now, report)
    await _reconcile_withdrawals(database, registry, settings, now, report)
    if report.deposits_checked or report.withdrawals_checked:
        log.info("payments.reconciled", **asdict(report))
    return report
