"""The SSRF guard with COFFER_WEBHOOKS_ALLOW_PRIVATE_TARGETS off: forbidden URLs are refused
when registered, and an endpoint that resolves to a forbidden address is refused again at
delivery time, after DNS, without a single byte reaching it."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from coffer.db import Database
from coffer.settings import Settings
from coffer.webhooks import service
from coffer.webhooks.ssrf import refusal_reason
from tests.fixtures.http import API, Caller
from tests.fixtures.identity import Mailbox
from tests.security.conftest import PRODUCTION
from tests.webhooks.conftest import Credit, Receiver, RunJobs


@pytest.fixture
def app_settings(database_url: str, mailbox: Mailbox) -> Settings:
    return Settings(
        database_url=database_url,
        worker_mode="external",
        database_pool_size=3,
        smtp_url=mailbox.url,
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hooks", "loopback"),
        ("http://10.0.0.1/hooks", "private"),
        ("http://192.168.1.10/hooks", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://localhost:{port}/hooks", "loopback"),
        ("http://2130706433:{port}/hooks", "loopback"),
        ("http://[::1]:{port}/hooks", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/hooks", "loopback"),
        ("http://0.0.0.0:{port}/hooks", "unspecified"),
        ("http://224.0.0.1/hooks", "multicast"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("http://user:secret@example.com/hooks", "credentials"),
        ("https://token@example.com/hooks", "credentials"),
        ("http:///hooks", "no_host"),
        ("http://example.com:99999/hooks", "malformed"),
    ],
)
async def test_a_forbidden_url_is_refused_when_registered(
    client: httpx.AsyncClient, caller: Caller, receiver: Receiver, url: str, reason: str
) -> None:
    response = await client.post(
        f"{API}/webhook-endpoints",
        json={"url": url.format(port=receiver.port), "events": ["balance.updated"]},
        headers=caller.headers,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["reason"]) == ("webhook_target_refused", reason)
    listed = await client.get(f"{API}/webhook-endpoints", headers=caller.headers)
    assert listed.json()["data"]["endpoints"] == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_target_that_resolves_inward_is_refused_at_delivery_time(
    client: httpx.AsyncClient,
    caller: Caller,
    receiver: Receiver,
    credit: Credit,
    run_jobs: RunJobs,
    app_database: Database,
    app_settings: Settings,
    host: str,
) -> None:
    # Registered while loopback was allowed (a name that pointed elsewhere, then rebound).
    allowing = app_settings.model_copy(update={"webhooks_allow_private_targets": True})
    async with app_database.transaction() as session:
        issued = await service.create_endpoint(
            session,
            allowing,
            caller.user_id,
            url=f"http://{host}:{receiver.port}/hooks",
            event_types=["balance.updated"],
        )
    await credit(caller, 1_000)
    await run_jobs()

    assert receiver.received == []
    response = await client.get(
        f"{API}/webhook-endpoints/{issued.endpoint.id}/deliveries", headers=caller.headers
    )
    [delivery] = response.json()["data"]["deliveries"]
    [attempt] = delivery["attempts"]
    assert (attempt["response_status"], attempt["error"]) == (None, "target_refused:loopback")


@pytest.mark.parametrize(
    ("address", "allowed_with_setting"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("fd12::1", True),
        ("::1", True),
        ("169.254.169.254", False),
        ("169.254.1.1", False),
        ("fd00:ec2::254", False),
        ("100.100.100.200", False),
        ("fe80::1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address refused, not bound
        ("::", False),
        ("239.1.1.1", False),
        ("100.64.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),
    ],
)
def test_which_addresses_a_delivery_may_reach(address: str, allowed_with_setting: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal_reason(ip, allow_private=False) is not None
    assert (refusal_reason(ip, allow_private=True) is None) is allowed_with_setting


def test_public_addresses_are_allowed() -> None:
    for address in ("93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"):
        assert refusal_reason(ipaddress.ip_address(address), allow_private=False) is None


def test_production_refuses_private_targets() -> None:
    Settings(**PRODUCTION)
    with pytest.raises(ValueError, match="COFFER_WEBHOOKS_ALLOW_PRIVATE_TARGETS"):
        Settings(**PRODUCTION, webhooks_allow_private_targets=True)
