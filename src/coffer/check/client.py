"""A careful client: every request has an Idempotency-Key, and a request that got no definitive
answer (a timeout, a dropped connection, 503, 409 `idempotency_key_in_use`, 429) is sent again
with the same key and body, within a bound, until it gets one.

Each logical request is an `Intent`; each send of it is an `Attempt` with its timing, which the
report groups by fault window.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

ATTEMPT_TIMEOUT_SECONDS = 5.0
"""One send; slower than this is treated as lost in transit and retried with the same key
(short on purpose: a retry that races its own original is part of the workload)."""
MAX_ATTEMPTS = 12
MAX_REQUEST_SECONDS = 90.0
"""A request gives up (its outcome stays unknown) after this long without a definitive answer."""
MAX_BACKOFF_SECONDS = 2.0
MAX_RETRY_AFTER_SECONDS = 5.0
RETRIED_CONFLICTS = frozenset({"idempotency_key_in_use", "rate_limited"})
KINDS = {
    "/api/v1/wallet/transfer": "transfer",
    "/api/v1/wallet/deposit": "deposit",
    "/api/v1/wallet/withdraw": "withdrawal",
}
"""The money requests, by path; anything else (a checkout choice, a webhook) follows one."""
STATUS_PATHS = {
    "transfer": "/api/v1/wallet/transfer/{}/status",
    "deposit": "/api/v1/wallet/deposit/{}/status",
    "withdrawal": "/api/v1/wallet/withdrawals/{}/status",
}
FINAL_STATUSES = frozenset({"completed", "success", "failed", "reversed", "abandoned"})
"""What a settled transfer, deposit or withdrawal can say."""


class AttemptResult(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    """A definitive 4xx: the request was judged and turned down."""
    UNAVAILABLE = "unavailable"
    """503 service_unavailable: the database was briefly out of reach."""
    CONFLICT = "conflict"
    """409 idempotency_key_in_use or 429: try again shortly."""
    SERVER_ERROR = "server_error"
    """Any other 5xx: a bug, reported as a violation."""
    TIMEOUT = "timeout"
    TRANSPORT = "transport"
    """The connection failed or dropped (an API process was killed mid-request)."""

    @property
    def is_error(self) -> bool:
        """What the client sees as an error (not an answer about its request)."""
        return self not in (AttemptResult.ACCEPTED, AttemptResult.REFUSED)


@dataclass(frozen=True, slots=True)
class Attempt:
    started: float
    """Seconds since the workload began."""
    seconds: float
    result: AttemptResult
    status: int | None = None
    code: str | None = None
    reference: str | None = None
    replayed: bool = False


@dataclass(slots=True)
class Intent:
    """One logical request: what was asked, every send of it and what came of them."""

    number: int
    operation: str
    sender: int
    """Index of the sending holder."""
    path: str
    body: dict[str, Any]
    key: str
    attempts: list[Attempt] = field(default_factory=list)
    content: bytes | None = None
    """Sent as is instead of `body` as JSON, with `headers` and no Authorization: a browser's
    checkout choice or a provider's webhook delivery (`body` then only describes it)."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return KINDS.get(self.path, "follow-up")

    @property
    def references(self) -> set[str]:
        return {a.reference for a in self.attempts if a.reference is not None}

    @property
    def accepted(self) -> bool:
        return any(a.result is AttemptResult.ACCEPTED for a in self.attempts)

    @property
    def refusal(self) -> str | None:
        return next((a.code for a in self.attempts if a.result is AttemptResult.REFUSED), None)

    @property
    def saw_error(self) -> bool:
        return any(a.result.is_error for a in self.attempts)

    @property
    def unknown(self) -> bool:
        """No definitive answer reached the client."""
        return not self.accepted and self.refusal is None


def _retry_after_seconds(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "1")), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return 1.0


def _classify(response: httpx.Response) -> tuple[AttemptResult, str | None, str | None]:
    """(result, error code, reference) of one response."""
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    code = (payload.get("error") or {}).get("code") if response.is_error else None
    if response.status_code in (200, 201, 202, 303):
        return AttemptResult.ACCEPTED, None, (payload.get("data") or {}).get("reference")
    if response.status_code == 503:
        return AttemptResult.UNAVAILABLE, code, None
    if response.status_code >= 500:
        return AttemptResult.SERVER_ERROR, code, None
    if response.status_code in (409, 429) and code in RETRIED_CONFLICTS:
        return AttemptResult.CONFLICT, code, None
    return AttemptResult.REFUSED, code, None


def _post(client: httpx.AsyncClient, token: str, intent: Intent) -> Any:
    if intent.content is not None:
        return client.post(
            intent.path,
            content=intent.content,
            headers=intent.headers,
            timeout=ATTEMPT_TIMEOUT_SECONDS,
        )
    return client.post(
        intent.path,
        json=intent.body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": intent.key},
        timeout=ATTEMPT_TIMEOUT_SECONDS,
    )


async def send(client: httpx.AsyncClient, token: str, intent: Intent, epoch: float) -> None:
    """Send `intent` until a definitive answer or the bound; every attempt is recorded."""
    began = time.monotonic()
    for attempt_number in range(MAX_ATTEMPTS):
        if time.monotonic() - began > MAX_REQUEST_SECONDS:
            return
        started = time.monotonic()
        wait_seconds = min(MAX_BACKOFF_SECONDS, 0.1 * 2**attempt_number)
        try:
            response = await _post(client, token, intent)
        except httpx.TimeoutException:
            result, status, code, reference, replayed = (
                AttemptResult.TIMEOUT,
                None,
                None,
                None,
                False,
            )
        except httpx.TransportError:
            result, status, code, reference, replayed = (
                AttemptResult.TRANSPORT,
                None,
                None,
                None,
                False,
            )
        else:
            result, code, reference = _classify(response)
            status = response.status_code
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if result in (AttemptResult.UNAVAILABLE, AttemptResult.CONFLICT):
                wait_seconds = max(wait_seconds, _retry_after_seconds(response))
        intent.attempts.append(
            Attempt(
                started - epoch,
                time.monotonic() - started,
                result,
                status,
                code,
                reference,
                replayed,
            )
        )
        if not result.is_error:
            return
        await asyncio.sleep(wait_seconds)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """An access token, retried like any request (the database may be restarting)."""
    for attempt_number in range(MAX_ATTEMPTS):
        try:
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": email, "password": password},
                timeout=ATTEMPT_TIMEOUT_SECONDS,
            )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            token: str = response.json()["data"]["access_token"]
            return token
        await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 0.1 * 2**attempt_number))
    raise RuntimeError(f"could not sign in as {email}")


@dataclass(frozen=True, slots=True)
class StatusRead:
    """One status read (a transfer's with `Prefer: wait`) after an accepted request."""

    reference: str
    attempt: Attempt
    status: str | None
    """What the route said; None for an error (see `attempt`) or a 404."""


async def read_status(
    client: httpx.AsyncClient,
    token: str,
    kind: str,
    reference: str,
    wait_seconds: int,
    epoch: float,
) -> StatusRead:
    """Read once, as a client polling its request would; an error is recorded, not retried
    (`Prefer: wait` holds only a transfer's answer)."""
    started = time.monotonic()
    status = None
    try:
        response = await client.get(
            STATUS_PATHS[kind].format(reference),
            headers={"Authorization": f"Bearer {token}", "Prefer": f"wait={wait_seconds}"},
            timeout=ATTEMPT_TIMEOUT_SECONDS + wait_seconds,
        )
    except httpx.TimeoutException:
        result, code, http_status = AttemptResult.TIMEOUT, None, None
    except httpx.TransportError:
        result, code, http_status = AttemptResult.TRANSPORT, None, None
    else:
        result, code, _ = _classify(response)
        http_status = response.status_code
        if result is AttemptResult.ACCEPTED:
            status = response.json()["data"]["status"]
    attempt = Attempt(started - epoch, time.monotonic() - started, result, http_status, code)
    return StatusRead(reference, attempt, status)
