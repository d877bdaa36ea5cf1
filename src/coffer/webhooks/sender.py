"""One delivery attempt over HTTP: a POST to the vetted address, within one time budget.

The attempt connects to the address `ssrf.resolve_target` vetted, never to whatever the name
resolves to a moment later; the name travels in the Host header and as the TLS server name, so
certificates are still checked against it. No proxy from the environment (it would choose the
address instead), no redirect followed, and at most `COFFER_WEBHOOK_MAX_RESPONSE_BYTES` of the
answer read, undecoded (a compressed bomb stays compressed).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

import httpx

from coffer.settings import Settings
from coffer.webhooks.ssrf import Target, WebhookTargetRefused, resolve_target

USER_AGENT = "coffer-webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    response_status: int | None
    latency_ms: int
    error: str | None
    """Why no 2xx came when no status says it: `target_refused`, `timeout`, …"""


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _host_header(target: Target) -> str:
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.hostname}]" if ":" in target.hostname else target.hostname
    return host if target.port == default_port else f"{host}:{target.port}"


async def _post(target: Target, headers: dict[str, str], body: bytes, settings: Settings) -> int:
    url = httpx.URL(
        scheme=target.scheme,
        host=str(target.address),
        port=target.port,
        raw_path=target.path.encode(),
    )
    extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
    async with (
        httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
        ) as client,
        client.stream(
            "POST",
            url,
            content=body,
            headers={
                **headers,
                "host": _host_header(target),
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            },
            extensions=extensions,
        ) as response,
    ):
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= settings.webhook_max_response_bytes:
                break
        return response.status_code


async def attempt(settings: Settings, url: str, headers: dict[str, str], body: bytes) -> Outcome:
    """POST `body` to `url`; never raises for anything the receiver or the network does."""
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            target = await resolve_target(
                url, allow_private=settings.webhooks_allow_private_targets
            )
            status = await _post(target, headers, body, settings)
    except WebhookTargetRefused as refused:
        error = f"target_refused:{refused.details['reason']}"
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
    except (httpx.HTTPError, OSError, UnicodeError):
        error = "connection_failed"
    latency_ms = round((time.monotonic() - started) * 1000)
    succeeded = status is not None and 200 <= status < 300
    return Outcome(succeeded, status, latency_ms, error)
