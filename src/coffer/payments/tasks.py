"""The payments jobs: pay out a withdrawal, reconcile what is in doubt, and the sandbox's
simulated payout webhooks."""

from __future__ import annotations

from typing import Any

from coffer.db import Database
from coffer.jobs.registry import job
from coffer.payments import sandbox
from coffer.payments.providers.registry import providers_for
from coffer.payments.providers.sandbox import DELIVER_PAYOUT_JOB
from coffer.payments.reconciliation import RECONCILE_INTERVAL, RECONCILE_JOB, reconcile
from coffer.payments.withdrawals import PAYOUT_JOB, initiate_payout
from coffer.settings import Settings


@job(PAYOUT_JOB)
async def run_payout(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    registry = providers_for(database, settings)
    await initiate_payout(database, settings, registry, str(payload["reference"]))


@job(RECONCILE_JOB, every=lambda _settings: RECONCILE_INTERVAL)
async def run_reconcile(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    await reconcile(database, settings, providers_for(database, settings))


@job(DELIVER_PAYOUT_JOB)
async def run_sandbox_payout(
    database: Database, settings: Settings, payload: dict[str, Any]
) -> None:
    await sandbox.deliver_payout_events(
        database, settings, providers_for(database, settings), str(payload["reference"])
    )
