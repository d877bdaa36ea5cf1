"""Managing webhook endpoints: signed-in users only, their own endpoints only, event types from
the catalogue, the secret shown once (never replayed, never listed), idempotent changes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from coffer.kit.pagination import encode_cursor
from coffer.webhooks.service import MAX_ENDPOINTS_PER_USER
from tests.fixtures.http import API, Caller, key_headers
from tests.webhooks.conftest import CreateEndpoint, Receiver

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]


def _routes(endpoint_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"{API}/webhook-endpoints"
    return [
        ("GET", f"{base}/{endpoint_id}", None),
        ("PATCH", f"{base}/{endpoint_id}", {"enabled": False}),
        ("DELETE", f"{base}/{endpoint_id}", None),
        ("POST", f"{base}/{endpoint_id}/rotate-secret", {}),
        ("GET", f"{base}/{endpoint_id}/deliveries", None),
        ("POST", f"{base}/{endpoint_id}/deliveries/1/retry", None),
    ]


async def test_api_keys_cannot_manage_endpoints(
    client: httpx.AsyncClient,
    caller: Caller,
    create_key: CreateKey,
    create_endpoint: CreateEndpoint,
    receiver: Receiver,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    key = await create_key(caller, ["read", "deposit", "transfer", "withdraw"])
    headers = key_headers(key["api_key"])
    create = ("POST", f"{API}/webhook-endpoints", {"url": receiver.url, "events": ["fee.charged"]})
    listing = ("GET", f"{API}/webhook-endpoints", None)
    for method, url, body in [create, listing, *_routes(endpoint["id"])]:
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"]["code"] == "permission_denied"
    shown = await client.get(f"{API}/webhook-endpoints/{endpoint['id']}", headers=caller.headers)
    assert shown.json()["data"]["enabled"] is True


async def test_another_users_endpoint_is_not_found(
    client: httpx.AsyncClient,
    caller: Caller,
    sign_in: SignIn,
    create_endpoint: CreateEndpoint,
    receiver: Receiver,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    intruder = await sign_in()
    for method, url, body in _routes(endpoint["id"]):
        response = await client.request(method, url, json=body, headers=intruder.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "webhook_endpoint_not_found"
    listed = await client.get(f"{API}/webhook-endpoints", headers=intruder.headers)
    assert listed.json()["data"]["endpoints"] == []
    shown = await client.get(f"{API}/webhook-endpoints/{endpoint['id']}", headers=caller.headers)
    assert shown.json()["data"]["enabled"] is True


@pytest.mark.parametrize(
    ("events", "code"),
    [
        (["transfer.completed", "transfer.exploded"], "unknown_event_type"),
        (["*"], "unknown_event_type"),
        ([], "validation_error"),
    ],
)
async def test_event_types_come_from_the_catalogue(
    client: httpx.AsyncClient, caller: Caller, receiver: Receiver, events: list[str], code: str
) -> None:
    response = await client.post(
        f"{API}/webhook-endpoints",
        json={"url": receiver.url, "events": events},
        headers=caller.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_an_endpoint_is_created_shown_changed_and_deleted(
    client: httpx.AsyncClient, caller: Caller, receiver: Receiver
) -> None:
    base = f"{API}/webhook-endpoints"
    created = await client.post(
        base,
        json={"url": receiver.url, "events": ["transfer.received", "transfer.completed"]},
        headers={**caller.headers, "Idempotency-Key": "create-1"},
    )
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["events"] == ["transfer.completed", "transfer.received"]
    assert data["secret"].startswith("whsec_")
    replay = await client.post(
        base,
        json={"url": receiver.url, "events": ["transfer.received", "transfer.completed"]},
        headers={**caller.headers, "Idempotency-Key": "create-1"},
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["id"] == data["id"]
    assert replay.json()["data"]["secret"] is None

    listed = (await client.get(base, headers=caller.headers)).json()["data"]
    assert [e["id"] for e in listed["endpoints"]] == [data["id"]]
    shown = (await client.get(f"{base}/{data['id']}", headers=caller.headers)).json()["data"]
    assert "secret" not in shown
    assert data["secret"] not in (await client.get(base, headers=caller.headers)).text

    changed = await client.patch(
        f"{base}/{data['id']}",
        json={"events": ["fee.charged"], "url": receiver.url + "/v2", "enabled": False},
        headers=caller.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["events"] == ["fee.charged"]
    assert changed.json()["data"]["url"] == receiver.url + "/v2"
    assert changed.json()["data"]["disabled_reason"] == "user"
    refused = await client.patch(
        f"{base}/{data['id']}", json={"url": "http://169.254.169.254/"}, headers=caller.headers
    )
    assert refused.json()["error"]["code"] == "webhook_target_refused"

    deleted = await client.delete(f"{base}/{data['id']}", headers=caller.headers)
    assert deleted.status_code == 200, deleted.text
    gone = await client.get(f"{base}/{data['id']}", headers=caller.headers)
    assert gone.status_code == 404
    assert (await client.get(base, headers=caller.headers)).json()["data"]["endpoints"] == []


async def test_metadata_addresses_are_refused_even_when_private_targets_are_allowed(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.post(
        f"{API}/webhook-endpoints",
        json={"url": "http://169.254.169.254/latest/", "events": ["fee.charged"]},
        headers=caller.headers,
    )
    assert response.json()["error"]["details"]["reason"] == "metadata"


async def test_a_user_has_a_bounded_number_of_endpoints(
    client: httpx.AsyncClient, caller: Caller, create_endpoint: CreateEndpoint, receiver: Receiver
) -> None:
    for _ in range(MAX_ENDPOINTS_PER_USER):
        await create_endpoint(caller, receiver.url)
    response = await client.post(
        f"{API}/webhook-endpoints",
        json={"url": receiver.url, "events": ["fee.charged"]},
        headers=caller.headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_limit_reached"
    page = await client.get(f"{API}/webhook-endpoints", params={"limit": 4}, headers=caller.headers)
    assert len(page.json()["data"]["endpoints"]) == 4
    assert page.json()["data"]["next_cursor"] is not None
    naive = encode_cursor("2026-12-01T00:00:00", str(uuid.uuid4()))
    refused = await client.get(
        f"{API}/webhook-endpoints", params={"cursor": naive}, headers=caller.headers
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_cursor"
