"""OWASP API8:2023 Security Misconfiguration: the production profile, headers, CORS, docs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
import pytest

from coffer.settings import Settings
from tests.fixtures.http import API, Caller
from tests.security.conftest import PRODUCTION, AppClient

SignIn = Callable[..., Awaitable[Caller]]
DOC_PATHS = ["/docs", "/redoc", "/openapi.json"]


@pytest.mark.parametrize("path", DOC_PATHS)
async def test_production_serves_no_documentation_by_default(
    app_client: AppClient, path: str
) -> None:
    async with app_client(**PRODUCTION) as client:
        response = await client.get(path)
    assert response.status_code == 404


@pytest.mark.parametrize("path", DOC_PATHS)
async def test_production_serves_documentation_when_the_operator_enables_it(
    app_client: AppClient, path: str
) -> None:
    async with app_client(**PRODUCTION, docs_enabled=True) as client:
        response = await client.get(path)
    assert response.status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_documentation_pages_load_every_asset_from_this_server(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    urls = re.findall(r"(?:src|href|spec-url)='([^']+)'", html)
    assert urls
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


async def test_an_unknown_documentation_asset_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/assets/..%2F..%2Fsettings.py")
    assert response.status_code == 404


async def test_readiness_says_ready_and_nothing_about_versions(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")
    # Whether jobs are delayed (the broker) is an operator's fact, not a version.
    assert response.json()["data"] == {"status": "ready", "broker": "not_configured"}
    assert "migration" not in response.text


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in [await client.get("/healthz"), await client.get(f"{API}/wallet/balance")]:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers


async def test_documentation_pages_allow_scripts_from_this_server_only(
    client: httpx.AsyncClient,
) -> None:
    policy = (await client.get("/docs")).headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-eval" not in policy


async def test_api_responses_are_never_cached(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    caller = await sign_in()
    created = await client.post(
        f"{API}/keys/create",
        json={"name": "cache", "permissions": ["read"], "expiry": "1D"},
        headers=caller.headers,
    )
    refused = await client.get(f"{API}/wallet/balance")
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    assert refused.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("base_url", "overrides"),
    [("https://coffer.test", {}), ("http://coffer.test", {"behind_tls": True})],
)
async def test_hsts_is_sent_when_the_request_came_over_tls(
    app_client: AppClient, base_url: str, overrides: dict[str, bool]
) -> None:
    async with app_client(base_url=base_url, **overrides) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_cors_is_off_unless_origins_are_listed(client: httpx.AsyncClient) -> None:
    response = await client.options(
        f"{API}/wallet/transfer", headers=_preflight("https://evil.example")
    )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_admits_listed_origins_only(app_client: AppClient) -> None:
    async with app_client(cors_origins="https://app.example.com") as client:
        allowed = await client.options(
            f"{API}/wallet/transfer", headers=_preflight("https://app.example.com")
        )
        refused = await client.options(
            f"{API}/wallet/transfer", headers=_preflight("https://evil.example")
        )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("origins", ["*", "https://app.example.com/path", "app.example.com"])
def test_cors_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ValueError, match="COFFER_CORS_ORIGINS"):
        Settings(cors_origins=origins)
