"""Fee jobs: charging every due wallet, and emailing what the charges did."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.fees.service import CHARGE_JOB, NOTIFY_JOB, charge_due, fee_money
from coffer.jobs.registry import job
from coffer.notifications.service import Event, amount_text, notify
from coffer.settings import Settings

log = structlog.get_logger(__name__)


@job(CHARGE_JOB, every=lambda settings: timedelta(seconds=settings.fee_charge_interval_seconds))
async def charge_fees(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    """Charge every due wallet, a batch per transaction; a rerun finds only what is left."""
    after = 0
    while True:
        async with database.transaction() as session:
            report = await charge_due(
                session,
                settings.monthly_fee,
                after_wallet_id=after,
                limit=settings.fee_batch_size,
                since=settings.monthly_fee_since,
            )
        if report.wallets:
            log.info(
                "fees.charged",
                wallets=report.wallets,
                paid=report.paid,
                owed=report.owed,
                blocked=len(report.blocked),
            )
        if report.wallets < settings.fee_batch_size:
            return
        after = report.last_wallet_id


@job(NOTIFY_JOB)
async def notify_fees(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    async with database.transaction() as session:
        for notice in payload.get("notices", []):
            await notify(
                session,
                settings,
                uuid.UUID(notice["user_id"]),
                Event(notice["event"]),
                {
                    "amount": amount_text(fee_money(notice)),
                    "wallet_number": notice["wallet_number"],
                    "reference": notice["reference"],
                },
                key=notice["reference"],
            )
