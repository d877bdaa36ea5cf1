"""Schemathesis against coffer's own OpenAPI document, in process (the ASGI app, its lifespan
on Schemathesis' event-loop thread): as a signed-in user and as an API key, a bounded number
of generated requests per operation, no 5xx and no response outside its declared schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi import checks as openapi_checks

from coffer.apikeys import service as apikeys
from coffer.apikeys.service import Expiry
from coffer.app import create_app
from coffer.auth.principal import Permission
from coffer.db import Database
from coffer.settings import Settings
from tests.fixtures.factories import fund, make_user
from tests.fixtures.http import new_session_token

EXAMPLES_PER_OPERATION = 12
# What the issue asks: no 5xx, and every response inside its declared status codes, content
# types and schema. (Schemathesis' acceptance checks would call a 422 for a well-formed but
# unsupported currency a failure; business-rule refusals are not this test's subject.)
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
# Sign-out, deactivation and revocation would end the run's own credentials part-way.
SELF_ENDING = {"/api/v1/auth/logout", "/api/v1/me/deactivate", "/api/v1/me/sessions/revoke"}


@dataclass(frozen=True)
class Credentials:
    bearer: dict[str, str]
    api_key: dict[str, str]


async def _credentials(settings: Settings) -> Credentials:
    database = Database(settings.database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            created = await make_user(session, currency="NGN")
            await fund(session, created.primary_wallet, 1_000_000)
            issued = await apikeys.create_key(
                session,
                settings,
                created.user.id,
                name="schemathesis",
                permissions=list(Permission),
                expiry=Expiry.DAY,
            )
        token = await new_session_token(database, settings, created.user.id)
    finally:
        await database.dispose()
    return Credentials({"Authorization": f"Bearer {token}"}, {"x-api-key": issued.secret})


def _fuzz(operation: APIOperation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    check()


def _described(failure: Exception) -> str:
    """The failure and, for a group (Hypothesis' flaky and multiple failures), each one in
    it: the summary alone names neither the check nor the response."""
    inner = failure.exceptions if isinstance(failure, BaseExceptionGroup) else ()
    return "\n  ".join([str(failure), *(f"{type(e).__name__}: {e}" for e in inner)])


@pytest.mark.slow
def test_generated_requests_get_no_server_error_and_match_the_schema(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    app_settings = Settings(
        database_url=fresh_database_url(),
        worker_mode="external",
        database_pool_size=3,
        rate_limit_per_user="1000000/minute",
        rate_limit_per_ip="1000000/minute",
        failed_auth_limit_per_ip="1000000/minute",
        api_key_rate_limit_per_minute=1_000_000,
        login_rate_limit_per_ip="1000000/minute",
        code_rate_limit_per_ip="1000000/minute",
        email_rate_limit_per_ip="1000000/minute",
    )
    credentials = asyncio.run(_credentials(app_settings))
    app = create_app(app_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in SELF_ENDING:
                continue
            for headers in (credentials.bearer, credentials.api_key):
                try:
                    _fuzz(operation, headers)
                except Exception as failure:  # every operation's failures, not just the first
                    failures.append(f"{operation.label}: {_described(failure)}")
    finally:
        shutdown_lifespans()
    assert not failures, "\n\n".join(failures)
