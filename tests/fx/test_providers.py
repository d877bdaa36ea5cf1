"""The ExchangeRate-API v6 client against a real local server that speaks its format, and the
refresh job that fills the rate cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from coffer.db import Database
from coffer.fx import service as fx
from coffer.fx.providers import ExchangeRateApi, FixedRates
from coffer.fx.service import FxProviderError, FxRateStale, FxRateUnavailable
from coffer.fx.tasks import refresh_rates
from coffer.jobs.runner import JobRunner
from coffer.models import FxRate, OutboxJob
from coffer.settings import FxProviderName, Settings, WorkerMode
from tests.fixtures.fx import FX_API_KEY, RateServer, error_body, latest_body


def client(server: RateServer, key: str = FX_API_KEY) -> ExchangeRateApi:
    return ExchangeRateApi(server.url, SecretStr(key), timeout_seconds=5)


async def test_latest_rates_are_parsed_exactly_from_their_text(rate_server: RateServer) -> None:
    rate_server.answer(
        "USD",
        200,
        latest_body("USD", {"USD": "1", "NGN": "1532.123456789012345678", "EUR": "0.9187"}),
    )
    snapshot = await client(rate_server).fetch("USD")
    assert snapshot.base == "USD"
    assert snapshot.rates == {
        "USD": Decimal("1"),
        "NGN": Decimal("1532.123456789012345678"),
        "EUR": Decimal("0.9187"),
    }
    assert snapshot.published_at == datetime.fromtimestamp(1_764_000_000, UTC)
    assert rate_server.paths == [f"/v6/{FX_API_KEY}/latest/USD"]


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (200, error_body("quota-reached"), "quota-reached"),
        (200, error_body("inactive-account"), "inactive-account"),
        (404, error_body("unsupported-code"), "unsupported-code"),
    ],
)
async def test_a_result_error_is_an_error_whatever_the_http_status(
    rate_server: RateServer, status: int, body: str, error_type: str
) -> None:
    rate_server.answer("USD", status, body)
    with pytest.raises(FxProviderError) as raised:
        await client(rate_server).fetch("USD")
    assert raised.value.details == {"error_type": error_type}


async def test_a_bad_key_is_refused_without_the_key_in_the_error(rate_server: RateServer) -> None:
    wrong_key = "wrong-key-which-must-not-leak"
    with pytest.raises(FxProviderError) as raised:
        await client(rate_server, wrong_key).fetch("USD")
    assert raised.value.details == {"error_type": "invalid-key"}
    assert wrong_key not in str(raised.value)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, "<html>upstream down</html>", "HTTP 500"),
        (200, "not json at all", "not JSON"),
        (200, latest_body("EUR", {"EUR": "1"}), "another base"),
        (200, latest_body("USD", {"USD": "1", "NGN": "-3"}), "unusable rate"),
        (200, latest_body("USD", {"USD": "1", "NGN": "NaN"}), "not JSON"),
        (200, '{"result": "success", "base_code": "USD", "conversion_rates": {}}', "no rates"),
    ],
)
async def test_unusable_answers_are_refused(
    rate_server: RateServer, status: int, body: str, message: str
) -> None:
    rate_server.answer("USD", status, body, "text/html" if status == 500 else "application/json")
    with pytest.raises(FxProviderError, match=message):
        await client(rate_server).fetch("USD")


async def test_an_unreachable_provider_fails_without_naming_the_url() -> None:
    provider = ExchangeRateApi("http://127.0.0.1:9", SecretStr(FX_API_KEY), timeout_seconds=2)
    with pytest.raises(FxProviderError, match="could not be reached") as raised:
        await provider.fetch("USD")
    assert FX_API_KEY not in str(raised.value)
    assert raised.value.__cause__ is None


def api_settings(database: Database, server: RateServer, **overrides: object) -> Settings:
    return Settings(
        database_url=database.url.replace("+aiosqlite", "").replace("+asyncpg", ""),
        fx_provider=FxProviderName.EXCHANGERATE_API,
        fx_api_key=SecretStr(FX_API_KEY),
        fx_base_url=server.url,
        **overrides,  # type: ignore[arg-type]
    )


async def test_refresh_fills_the_cache_and_only_the_configured_providers_rates_are_used(
    fx_database: Database, rate_server: RateServer
) -> None:
    settings = api_settings(fx_database, rate_server)
    async with fx_database.transaction() as session:
        # Before any refresh only the migration's `fixed` rows exist: not this provider's.
        with pytest.raises(FxRateUnavailable):
            (await fx.load_rates(session, settings, {"NGN"})).rate("USD", "NGN")

    rate_server.answer(
        "USD", 200, latest_body("USD", {"USD": "1", "NGN": "1532.5", "XAU": "0.0004"})
    )
    stored = await refresh_rates(fx_database, settings)
    assert stored == 2  # XAU is not a currency coffer knows

    async with fx_database.transaction() as session:
        book = await fx.load_rates(session, settings, {"NGN", "EUR"})
        assert book.rate("USD", "NGN") == Decimal("1532.5")
        with pytest.raises(FxRateUnavailable):
            book.rate("USD", "EUR")
        rows = (
            (await session.execute(select(FxRate).where(FxRate.source == "exchangerate_api")))
            .scalars()
            .all()
        )
        assert {(r.currency, r.rate) for r in rows} == {("USD", 1), ("NGN", Decimal("1532.5"))}


async def test_a_failed_refresh_keeps_the_old_rates_which_then_go_stale(
    fx_database: Database, rate_server: RateServer
) -> None:
    settings = api_settings(fx_database, rate_server, fx_max_age_seconds=3600)
    rate_server.answer("USD", 200, latest_body("USD", {"USD": "1", "NGN": "1500"}))
    await refresh_rates(fx_database, settings)
    rate_server.answer("USD", 200, error_body("quota-reached"))
    with pytest.raises(FxProviderError):
        await refresh_rates(fx_database, settings)

    now = datetime.now(UTC)
    async with fx_database.transaction() as session:
        fresh = await fx.load_rates(session, settings, {"NGN"}, now + timedelta(minutes=59))
        assert fresh.rate("NGN", "USD") == Fraction(1, 1500)
        assert fresh.rate("USD", "NGN") == 1500
        stale = await fx.load_rates(session, settings, {"NGN"}, now + timedelta(minutes=61))
        with pytest.raises(FxRateStale):
            stale.rate("USD", "NGN")
        # The base against itself needs no rate, stale or not.
        assert stale.rate("USD", "USD") == 1


async def test_the_fixed_provider_reads_the_operators_table(fx_database: Database) -> None:
    async with fx_database.transaction() as session:
        await fx.set_fixed_rate(session, "USD", "KES", Decimal("129.35"))
    snapshot = await FixedRates(fx_database).fetch("USD")
    assert snapshot.rates["KES"] == Decimal("129.35")
    assert snapshot.rates["NGN"] == Decimal("1500")
    with pytest.raises(FxProviderError, match="No fixed rates"):
        await FixedRates(fx_database).fetch("EUR")


async def test_the_runner_schedules_the_refresh_job_and_runs_it(
    fx_database: Database, rate_server: RateServer
) -> None:
    settings = api_settings(fx_database, rate_server, worker_mode=WorkerMode.EXTERNAL)
    rate_server.answer("USD", 200, latest_body("USD", {"USD": "1", "GHS": "12.5"}))
    runner = JobRunner(fx_database, settings)
    await runner.run_once()
    async with fx_database.transaction() as session:
        book = await fx.load_rates(session, settings, {"GHS"})
        assert book.rate("USD", "GHS") == Decimal("12.5")
        left = (await session.execute(select(OutboxJob.name))).scalars().all()
    assert fx.REFRESH_JOB not in left
