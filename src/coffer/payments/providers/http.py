"""The one HTTP client Paystack and Stripe share: explicit timeouts and bounded retries.

Only failures that say nothing about the outcome are retried: network errors, timeouts and
5xx answers. A 4xx is the provider's verdict on the request and is returned to the caller at
once. Retrying a POST is safe because every mutating call carries our own reference (Paystack's
`reference`, Stripe's `Idempotency-Key`), so a request that reached the provider before the
connection broke cannot be applied twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from coffer.payments.providers.base import ProviderError, ProviderName, ProviderUnavailable
from coffer.settings import Settings

log = structlog.get_logger(__name__)

MAX_RESPONSE_BYTES = 2_000_000
MAX_BACKOFF_SECONDS = 10.0
_DIGITS = re.compile(r"[0-9]{1,19}")


class ProviderHttp:
    """Requests to one provider's API with its credentials, timeouts and retry policy."""

    def __init__(
        self,
        provider: ProviderName,
        settings: Settings,
        *,
        base_url: str,
        headers: Mapping[str, str],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._provider = provider
        self._max_attempts = settings.provider_http_max_attempts
        self._backoff_base_seconds = settings.provider_http_backoff_base_seconds
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"accept": "application/json", **headers},
            timeout=httpx.Timeout(
                connect=settings.provider_http_connect_timeout_seconds,
                read=settings.provider_http_read_timeout_seconds,
                write=settings.provider_http_read_timeout_seconds,
                pool=settings.provider_http_connect_timeout_seconds,
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The first answer below 500, or `ProviderUnavailable` once the attempts are spent."""
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.request(
                    method, path, params=params, json=json_body, data=form, headers=headers
                )
            except httpx.TransportError as error:
                # The error text can name the URL; the type is enough and leaks nothing.
                reason = type(error).__name__
            else:
                if response.status_code < 500:
                    return response
                reason = f"HTTP {response.status_code}"
            log.warning(
                "payments.provider.attempt_failed",
                provider=self._provider.value,
                method=method,
                path=path,
                attempt=attempt,
                reason=reason,
            )
            if attempt < self._max_attempts:
                await asyncio.sleep(self._backoff_seconds(attempt))
        raise ProviderUnavailable(
            f"{self._provider.value} did not answer after {self._max_attempts} attempts ({reason})",
            details={"provider": self._provider.value, "reason": reason},
        )

    def _backoff_seconds(self, attempt: int) -> float:
        """Exponential with "equal jitter": half the step fixed, half random, so many clients
        retrying together spread out instead of arriving in waves."""
        step = min(MAX_BACKOFF_SECONDS, self._backoff_base_seconds * 2.0 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not a secret

    async def aclose(self) -> None:
        await self._client.aclose()


def json_object(response: httpx.Response, provider: ProviderName) -> dict[str, Any]:
    """The answer's JSON object; anything else is an answer we cannot use."""
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise ProviderError(f"{provider.value} answered with an oversized body")
    try:
        document = json.loads(response.content)
    except ValueError:
        raise ProviderError(
            f"{provider.value} answered HTTP {response.status_code} with something not JSON"
        ) from None
    if not isinstance(document, dict):
        raise ProviderError(f"{provider.value} answered with JSON that is not an object")
    return document


def minor_units(value: object, provider: ProviderName) -> int:
    """An amount in minor units: a JSON integer, or a string of ASCII digits (some Paystack
    answers send amounts as strings). Floats, booleans and signs are refused."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ProviderError(
        f"{provider.value} sent an amount that is not a whole number of minor units"
    )


def text_field(document: Mapping[str, Any], name: str) -> str | None:
    """A field that should be a string; numbers (a Paystack id, an expiry month) become text."""
    value = document.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def mapping_field(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A field that should be an object; Paystack sends `metadata` as "", 0 or null too."""
    value = document.get(name)
    return value if isinstance(value, dict) else {}


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by lower-case name, whatever case the mapping keeps its keys in."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def path_part(value: str) -> str:
    """A reference or id as exactly one path segment: ours are URL-safe, but a hostile value
    must not walk to another endpoint."""
    return quote(value, safe="")
