"""Web app fixtures without a browser: the app behind an httpx client that keeps cookies as
a browser does, with emails delivered to the real SMTP mailbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.identity import PASSWORD, Api, MakeApi, new_email
from tests.web.forms import csrf_token, hidden_fields


@dataclass
class Browserless:
    """A cookie-keeping client on the web app, and the API fixture it shares the app with."""

    api: Api
    client: httpx.AsyncClient

    async def post_form(self, path: str, page: httpx.Response, **fields: str) -> httpx.Response:
        """Submit a form of `page` the way a browser does: its hidden fields plus `fields`."""
        return await self.client.post(path, data=hidden_fields(page) | fields)

    async def sign_up(self, email: str | None = None) -> str:
        address = email or new_email()
        page = await self.client.get("/app/sign-up")
        created = await self.post_form(
            "/app/sign-up", page, email=address, password=PASSWORD, first_name="Ada"
        )
        assert created.status_code == 303, created.text
        verify_page = await self.client.get(created.headers["location"])
        code = await self.api.code_for(address)
        verified = await self.post_form("/app/sign-up/verify", verify_page, code=code)
        assert verified.status_code == 303, verified.text
        assert verified.headers["location"] == "/app/sign-in?notice=verified"
        return address

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.client.get("/app/sign-in")
        return await self.post_form("/app/sign-in", page, identifier=email, password=password)


@pytest.fixture
async def web(make_api: MakeApi) -> AsyncIterator[Browserless]:
    async with make_api() as api:
        transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Browserless(api, client)


__all__ = ["Browserless", "csrf_token"]
