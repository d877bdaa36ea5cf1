"""OWASP API10:2023 Unsafe Consumption of APIs: the FX provider's answers are distrusted (size
capped while streaming, rates that jump held for an operator)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from coffer.db import Database
from coffer.fx import service as fx
from coffer.fx.providers import ExchangeRateApi
from coffer.fx.service import FxHoldNotFound, FxProviderError
from coffer.fx.tasks import refresh_rates
from coffer.models import FxRate, FxRateHold
from coffer.settings import Settings
from tests.fixtures.fx import FX_API_KEY, RateServer, latest_body
from tests.fx.test_providers import api_settings

CAP = 16 * 1024
STREAMED_TOTAL = 200 * 1024 * 1024


class EndlessServer:
    """Streams a body with no Content-Length, 64 KiB at a time, up to STREAMED_TOTAL."""

    def __init__(self) -> None:
        self.sent = 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                chunk = b" " * 65536
                try:
                    while state.sent < STREAMED_TOTAL:
                        self.wfile.write(chunk)
                        state.sent += len(chunk)
                except OSError:
                    return  # the client hung up: what this test hopes for

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def endless_server() -> Iterator[EndlessServer]:
    state = EndlessServer()
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
    thread.join()


async def test_a_streamed_provider_answer_is_cut_off_at_the_cap(
    endless_server: EndlessServer,
) -> None:
    provider = ExchangeRateApi(
        endless_server.url, SecretStr(FX_API_KEY), timeout_seconds=30, max_response_bytes=CAP
    )
    with pytest.raises(FxProviderError, match="too large"):
        await provider.fetch("USD")
    # Whatever the socket buffers took, the client stopped reading long before the end.
    assert endless_server.sent < STREAMED_TOTAL / 4


async def test_a_declared_oversized_provider_answer_is_refused(rate_server: RateServer) -> None:
    rate_server.answer("USD", 200, latest_body("USD", {"NGN": "1500"}) + " " * CAP)
    provider = ExchangeRateApi(rate_server.url, SecretStr(FX_API_KEY), max_response_bytes=CAP)
    with pytest.raises(FxProviderError, match="too large"):
        await provider.fetch("USD")


async def _cached(database: Database, currency: str) -> Decimal:
    async with database.transaction() as session:
        row = await session.scalar(
            select(FxRate).where(FxRate.currency == currency, FxRate.source == "exchangerate_api")
        )
    assert row is not None
    return row.rate


async def _holds(database: Database) -> list[tuple[str, Decimal]]:
    async with database.transaction() as session:
        holds = (await session.execute(select(FxRateHold))).scalars().all()
    return [(hold.currency, hold.rate) for hold in holds]


async def _refresh(database: Database, server: RateServer, settings: Settings, ngn: str) -> None:
    server.answer("USD", 200, latest_body("USD", {"USD": "1", "NGN": ngn}))
    await refresh_rates(database, settings)


async def test_a_rate_that_jumps_is_held_and_logged_while_the_cached_rate_serves(
    fx_database: Database, rate_server: RateServer, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = api_settings(fx_database, rate_server, fx_max_jump_bps=2000)
    await _refresh(fx_database, rate_server, settings, "1500")

    capfd.readouterr()
    await _refresh(fx_database, rate_server, settings, "15000")
    captured = capfd.readouterr()

    assert await _cached(fx_database, "NGN") == Decimal("1500")
    assert await _holds(fx_database) == [("NGN", Decimal("15000"))]
    refusals = [
        line
        for line in (captured.out + captured.err).splitlines()
        if "fx.rate_jump_refused" in line
    ]
    assert len(refusals) == 1, captured
    assert "NGN" in refusals[0]
    assert "90000" in refusals[0]


async def test_a_rate_within_the_bound_is_cached_and_ends_a_hold(
    fx_database: Database, rate_server: RateServer
) -> None:
    settings = api_settings(fx_database, rate_server, fx_max_jump_bps=2000)
    await _refresh(fx_database, rate_server, settings, "1500")
    await _refresh(fx_database, rate_server, settings, "900")
    await _refresh(fx_database, rate_server, settings, "1750")  # +16.7%
    assert await _cached(fx_database, "NGN") == Decimal("1750")
    assert await _holds(fx_database) == []


async def test_an_operator_confirms_a_held_rate_into_the_cache(
    fx_database: Database, rate_server: RateServer
) -> None:
    settings = api_settings(fx_database, rate_server, fx_max_jump_bps=2000)
    await _refresh(fx_database, rate_server, settings, "1500")
    await _refresh(fx_database, rate_server, settings, "3000")

    async with fx_database.transaction() as session:
        confirmed = await fx.confirm_held_rate(session, "USD", "ngn")
    assert confirmed == Decimal("3000")
    assert await _cached(fx_database, "NGN") == Decimal("3000")
    assert await _holds(fx_database) == []
    async with fx_database.transaction() as session:
        with pytest.raises(FxHoldNotFound):
            await fx.confirm_held_rate(session, "USD", "NGN")
