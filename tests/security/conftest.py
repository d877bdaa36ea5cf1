"""Apps with settings of the test's choosing (production profiles, CORS, TLS), on the test's
database, behind an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from coffer.app import create_app
from coffer.settings import Settings
from tests.fixtures.sms import PRODUCTION_SMS

AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PRODUCTION = {
    "env": "production",
    "secret_key": "a-production-secret-of-at-least-32-characters",
    "smtp_url": "smtp://127.0.0.1:2525",
    # These tests are about the HTTP profile; a real provider needs keys they have no use for.
    "sandbox_in_production": True,
    **PRODUCTION_SMS,
}


@pytest.fixture
def app_client(database_url: str) -> AppClient:
    """`async with app_client(env="production", base_url="https://...") as client:`"""

    @asynccontextmanager
    async def open_client(
        *, base_url: str = "http://coffer.test", **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            database_url=database_url, worker_mode="external", database_pool_size=2, **overrides
        )
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield client

    return open_client
