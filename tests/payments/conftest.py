"""Payments fixtures: the app with the sandbox provider, and a `Payments` driver that does
what a browser, a provider and the worker would, through the real routes and jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from coffer.db import Database
from coffer.jobs.runner import JobRunner
from coffer.kit.clock import utcnow
from coffer.models import InboxOutcome, WebhookInboxEntry
from coffer.payments.providers.registry import ProviderRegistry, providers_for
from coffer.payments.providers.sandbox import SIGNATURE_HEADER, sign, webhook_secret
from coffer.payments.reconciliation import ReconcileReport, reconcile
from coffer.settings import Settings
from tests.fixtures.factories import assert_ledger_sound
from tests.fixtures.http import API, Caller

SANDBOX_WEBHOOK = f"{API}/wallet/sandbox/webhook"
CALLBACK = "https://shop.example.com/thanks"


@dataclass
class Payments:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def database(self) -> Database:
        database: Database = self.app.state.database
        return database

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    @property
    def providers(self) -> ProviderRegistry:
        return providers_for(self.database, self.settings)

    async def deposit(
        self, caller: Caller, amount: str = "5000.00", **fields: Any
    ) -> httpx.Response:
        headers = caller.headers | fields.pop("headers", {})
        body = {"amount": amount, "callback_url": CALLBACK} | fields
        return await self.client.post(f"{API}/wallet/deposit", json=body, headers=headers)

    async def started(self, caller: Caller, amount: str = "5000.00", **fields: Any) -> str:
        response = await self.deposit(caller, amount, **fields)
        assert response.status_code == 201, response.text
        reference: str = response.json()["data"]["reference"]
        return reference

    async def choose(
        self, reference: str, choice: str = "pay", remember: bool = False
    ) -> httpx.Response:
        return await self.client.post(
            f"/sandbox/checkout/{reference}/{choice}",
            content=b"remember=1" if remember else b"",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    def signed_headers(self, raw: bytes) -> dict[str, str]:
        secret = webhook_secret(self.settings)
        assert secret is not None
        return {SIGNATURE_HEADER: sign(secret, raw), "content-type": "application/json"}

    def signed(self, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(event, separators=(",", ":")).encode()
        return raw, self.signed_headers(raw)

    async def post_webhook(self, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(SANDBOX_WEBHOOK, content=raw, headers=headers)

    async def balance(self, caller: Caller) -> str:
        response = await self.client.get(f"{API}/wallet/balance", headers=caller.headers)
        balance: str = response.json()["data"]["balance"]
        return balance

    async def history(self, caller: Caller, reference: str) -> dict[str, Any]:
        response = await self.client.get(f"{API}/wallet/transactions", headers=caller.headers)
        rows = [r for r in response.json()["data"]["transactions"] if r["reference"] == reference]
        assert len(rows) == 1, rows
        row: dict[str, Any] = rows[0]
        return row

    async def deposit_status(self, caller: Caller, reference: str) -> dict[str, Any]:
        response = await self.client.get(
            f"{API}/wallet/deposit/{reference}/status", headers=caller.headers
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def run_jobs(self) -> None:
        """Run every due outbox job until none is left (the worker, in-process)."""
        runner = JobRunner(self.database, self.settings)
        runner.schedules = []
        while await runner.run_once():
            pass

    async def reconcile(self, after: timedelta) -> ReconcileReport:
        return await reconcile(self.database, self.settings, self.providers, utcnow() + after)

    async def inbox(self, event_key: str) -> list[WebhookInboxEntry]:
        async with self.database.transaction() as session:
            rows = await session.execute(
                select(WebhookInboxEntry).where(WebhookInboxEntry.event_key == event_key)
            )
            return list(rows.scalars())

    async def inbox_size(self) -> int:
        async with self.database.transaction() as session:
            return int(
                await session.scalar(select(func.count()).select_from(WebhookInboxEntry)) or 0
            )

    async def review_reasons(self, event_key: str) -> list[str | None]:
        return [e.reason for e in await self.inbox(event_key) if e.outcome == InboxOutcome.REVIEW]

    async def assert_ledger_sound(self) -> None:
        async with self.database.transaction() as session:
            await assert_ledger_sound(session)


@pytest.fixture
def payments(app: FastAPI, client: httpx.AsyncClient) -> Payments:
    return Payments(app, client)


def charge_event(
    reference: str, amount_minor: int, currency: str = "NGN", **data: Any
) -> dict[str, Any]:
    return {
        "event": "charge.success",
        "data": {
            "reference": reference,
            "amount": amount_minor,
            "currency": currency,
            "status": "success",
        }
        | data,
    }
