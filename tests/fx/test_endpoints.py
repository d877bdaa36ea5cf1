"""`POST /api/v1/fx/quote` through the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from coffer.app import create_app
from coffer.db import Database
from coffer.kit.clock import utcnow
from coffer.models import FxRate
from coffer.settings import Settings, WorkerMode
from tests.fixtures.factories import make_user
from tests.fixtures.fx import bearer_token

QUOTE = "/api/v1/fx/quote"


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coffer") as client:
            yield client


async def signed_in(database: Database, settings: Settings) -> dict[str, str]:
    async with database.transaction() as session:
        user = (await make_user(session, currency="USD")).user
        token = await bearer_token(session, settings, user)
    return {"authorization": f"Bearer {token}"}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        worker_mode=WorkerMode.EXTERNAL,
        database_pool_size=2,
        **overrides,
    )


async def test_a_quote_is_created_for_the_signed_in_user(
    database: Database, database_url: str
) -> None:
    settings = settings_for(database_url, fx_spread_bps=100)
    headers = await signed_in(database, settings)
    async with client_for(settings) as client:
        response = await client.post(
            QUOTE,
            headers={**headers, "content-type": "application/json"},
            # An exact JSON number: parsed as a Decimal, never a float.
            content=b'{"from_currency": "USD", "to_currency": "NGN", "amount": 20.00}',
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["status_code"]) == ("success", 201)
    data = body["data"]
    expires_at = datetime.fromisoformat(data.pop("expires_at").replace("Z", "+00:00"))
    assert data.pop("quote_id").startswith("FXQ_")
    assert data == {
        "from_currency": "USD",
        "to_currency": "NGN",
        "rate": "1500",
        "send_amount": "20.00",
        "fee": "0.20",
        "receive_amount": "29700.00",
    }
    assert utcnow() < expires_at <= utcnow() + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"from_currency": "USD", "to_currency": "NGN", "amount": "1.001"}, 422, "invalid_amount"),
        ({"from_currency": "USD", "to_currency": "NGN", "amount": "-1"}, 422, "invalid_amount"),
        ({"from_currency": "USD", "to_currency": "NGN", "amount": True}, 422, "invalid_amount"),
        (
            {"from_currency": "USD", "to_currency": "XYZ", "amount": "1"},
            422,
            "unsupported_currency",
        ),
        ({"from_currency": "USD", "to_currency": "USD", "amount": "1"}, 422, "validation_error"),
        ({"from_currency": "US", "to_currency": "NGN", "amount": "1"}, 422, "validation_error"),
        ({"from_currency": "USD", "to_currency": "NGN"}, 422, "validation_error"),
        (
            {"from_currency": "USD", "to_currency": "NGN", "amount": "1", "rate": "2000"},
            422,
            "validation_error",
        ),
    ],
)
async def test_malformed_quote_requests_are_refused_with_a_code(
    database: Database, database_url: str, body: dict[str, Any], status: int, code: str
) -> None:
    settings = settings_for(database_url)
    headers = await signed_in(database, settings)
    async with client_for(settings) as client:
        response = await client.post(QUOTE, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_a_quote_needs_credentials(database_url: str) -> None:
    async with client_for(settings_for(database_url)) as client:
        response = await client.post(
            QUOTE, json={"from_currency": "USD", "to_currency": "NGN", "amount": "1"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_a_quote_on_a_stale_rate_is_refused(fx_database: Database) -> None:
    settings = settings_for(fx_database.url, fx_max_age_seconds=3600)
    async with fx_database.transaction() as session:
        await session.execute(update(FxRate).values(fetched_at=utcnow() - timedelta(seconds=3601)))
    headers = await signed_in(fx_database, settings)
    async with client_for(settings) as client:
        response = await client.post(
            QUOTE,
            headers=headers,
            json={"from_currency": "USD", "to_currency": "NGN", "amount": "1"},
        )
    assert response.status_code == 422
    assert response.json()["error"] == {"code": "fx_rate_stale", "details": {"currency": "NGN"}}
