"""OWASP API7:2023 Server Side Request Forgery: no client-supplied URL is fetched except a
webhook endpoint's (through the guard tests/webhooks/test_ssrf.py covers), and the outbound
client a response can steer (the FX provider's) follows no redirect."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from coffer.app import create_app
from coffer.fx.providers import ExchangeRateApi
from coffer.fx.service import FxProviderError
from tests.fixtures.fx import FX_API_KEY
from tests.fixtures.http import API, Caller

SignIn = Callable[..., Awaitable[Caller]]
STORED_NEVER_FETCHED = {"profile_image_url", "callback_url"}
"""URL-shaped request fields coffer keeps and hands back, and never requests itself (a deposit's
callback_url goes to the provider and the payer's browser, never to coffer's own client)."""
FETCHED_THROUGH_THE_WEBHOOK_GUARD = {"url"}
"""A webhook endpoint's `url`: delivered to only after `coffer.webhooks.ssrf` vetted it."""


class Recorder:
    """A local server that records every request and answers with `status` and `headers`."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.paths: list[str] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.paths.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def internal() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


def _url_fields(node: Any, name: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("format") in ("uri", "url") or (name and "url" in name.lower()):
            yield name
        for key, value in node.items():
            yield from _url_fields(value, key if key not in ("anyOf", "items") else name)
    elif isinstance(node, list):
        for item in node:
            yield from _url_fields(item, name)


def test_the_only_url_fields_clients_send_are_stored_or_guarded() -> None:
    document = create_app().openapi()
    inputs = {
        schema_name: schema
        for schema_name, schema in document["components"]["schemas"].items()
        if not schema_name.startswith(("Envelope", "Error"))
        and not schema_name.endswith(("Out", "Page", "List", "Accepted", "Started"))
    }
    found = {field for field in _url_fields(inputs) if field != "properties"}
    assert found == STORED_NEVER_FETCHED | FETCHED_THROUGH_THE_WEBHOOK_GUARD, found


async def test_a_profile_image_url_is_never_requested(
    client: httpx.AsyncClient, sign_in: SignIn, internal: Recorder
) -> None:
    caller = await sign_in()
    url = internal.url.replace("http://", "https://") + "/internal-admin"
    updated = await client.patch(
        f"{API}/me", json={"profile_image_url": url}, headers=caller.headers
    )
    assert updated.status_code == 200, updated.text
    await client.get(f"{API}/me", headers=caller.headers)
    assert internal.paths == []


async def test_the_fx_client_follows_no_redirect(internal: Recorder) -> None:
    redirector = Recorder(302, {"location": f"{internal.url}/latest-metadata"})
    try:
        provider = ExchangeRateApi(redirector.url, SecretStr(FX_API_KEY), timeout_seconds=5)
        with pytest.raises(FxProviderError, match="HTTP 302"):
            await provider.fetch("USD")
    finally:
        redirector.close()
    assert internal.paths == []
