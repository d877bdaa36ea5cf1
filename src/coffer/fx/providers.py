"""Rate providers behind one protocol: each returns a snapshot of rates against a base.

`exchangerate_api` speaks ExchangeRate-API v6 `latest`; `fixed` reads the operator's table.
A provider runs outside any database transaction of the caller's (an HTTP call must never hold
SQLite's write lock); the refresh job stores what it returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from coffer.db import Database
from coffer.fx import repository
from coffer.fx.service import FxProviderError, RateSnapshot
from coffer.settings import FxProviderName, Settings

HTTP_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 1_000_000


class RateProvider(Protocol):
    name: str

    async def fetch(self, base: str) -> RateSnapshot: ...


def _refuse_float_constant(name: str) -> Decimal:
    raise ValueError(f"{name} is not a rate")


def parse_latest(body: str, base: str) -> RateSnapshot:
    """Parse a v6 `latest` body; `result: "error"` is an error whatever the HTTP status.

    Numbers are read as Decimal from their text, never through a binary float.
    """
    try:
        document: Any = json.loads(
            body, parse_float=Decimal, parse_int=Decimal, parse_constant=_refuse_float_constant
        )
    except ValueError:
        raise FxProviderError("The rate provider answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise FxProviderError("The rate provider's answer is not an object")
    if document.get("result") != "success":
        error_type = str(document.get("error-type", "unknown"))[:64]
        raise FxProviderError(
            f"The rate provider refused: {error_type}", details={"error_type": error_type}
        )
    if document.get("base_code") != base:
        raise FxProviderError("The rate provider answered for another base currency")
    rates = document.get("conversion_rates")
    if not isinstance(rates, dict) or not rates:
        raise FxProviderError("The rate provider's answer has no rates")
    parsed: dict[str, Decimal] = {}
    for code, value in rates.items():
        if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
            raise FxProviderError(f"The rate provider gave an unusable rate for {str(code)[:8]}")
        parsed[str(code)] = value
    published = document.get("time_last_update_unix")
    try:
        published_at = (
            datetime.fromtimestamp(int(published), UTC) if isinstance(published, Decimal) else None
        )
    except (InvalidOperation, ValueError, OverflowError):
        published_at = None
    return RateSnapshot(base, parsed, published_at)


class ExchangeRateApi:
    """GET {base_url}/v6/{key}/latest/{base}."""

    name = FxProviderName.EXCHANGERATE_API.value

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_response_bytes = max_response_bytes
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_seconds = timeout_seconds
        self._transport = transport

    async def fetch(self, base: str) -> RateSnapshot:
        url = f"{self._base_url}/v6/{self._api_key.get_secret_value()}/latest/{base}"
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self._timeout_seconds, transport=self._transport
                ) as client,
                client.stream("GET", url, headers={"accept": "application/json"}) as response,
            ):
                body = await self._read_capped(response)
        except httpx.HTTPError as error:
            # `from None`: httpx's message names the URL, and the URL holds the API key.
            raise FxProviderError(
                f"The rate provider could not be reached ({type(error).__name__})"
            ) from None
        http_failure = FxProviderError(f"The rate provider answered HTTP {response.status_code}")
        try:
            snapshot = parse_latest(body.decode("utf-8", errors="replace"), base)
        except FxProviderError as error:
            # The provider's own error type says more than the status; an unparsable error
            # page says less.
            if error.details is None and response.status_code != httpx.codes.OK:
                raise http_failure from None
            raise
        if response.status_code != httpx.codes.OK:
            raise http_failure
        return snapshot

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The body, read chunk by chunk and abandoned once it passes the cap (a declared
        Content-Length over it is refused before any of it is read)."""
        too_large = FxProviderError("The rate provider's answer is too large")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_response_bytes:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self._max_response_bytes:
                raise too_large
        return bytes(body)


class FixedRates:
    """The operator's rates from `fx_fixed_rates` (embedded mode, tests, or a manual override)."""

    name = FxProviderName.FIXED.value

    def __init__(self, database: Database) -> None:
        self._database = database

    async def fetch(self, base: str) -> RateSnapshot:
        async with self._database.transaction() as session:
            rows = await repository.fixed_rates(session, base)
        if not rows:
            raise FxProviderError(f"No fixed rates are set against {base}")
        return RateSnapshot(
            base, {row.currency: row.rate for row in rows}, max(row.updated_at for row in rows)
        )


def build_provider(settings: Settings, database: Database) -> RateProvider:
    if settings.fx_provider is FxProviderName.EXCHANGERATE_API:
        if settings.fx_api_key is None:
            raise FxProviderError("COFFER_FX_API_KEY is not set")
        return ExchangeRateApi(
            settings.fx_base_url,
            settings.fx_api_key,
            max_response_bytes=settings.fx_max_response_bytes,
        )
    return FixedRates(database)
