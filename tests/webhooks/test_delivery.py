"""Deliveries to real receivers: signed per the specification (checked by an implementation
written here), retried on the documented schedule with one webhook-id, given up after three
days (endpoint disabled, owner emailed), resent on request; redirects are never followed."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from coffer.db import Database
from coffer.models import WebhookDelivery
from coffer.settings import Settings
from coffer.webhooks.deliveries import MAX_ATTEMPTS, RETRY_DELAYS
from coffer.webhooks.tasks import run_fan_out
from tests.fixtures.http import API, Caller
from tests.fixtures.identity import Mailbox
from tests.webhooks.conftest import (
    CreateEndpoint,
    Credit,
    MakeReceiver,
    Receiver,
    RunJobs,
    independent_signatures,
)

Shift = Callable[[timedelta], None]


async def deliveries(client: httpx.AsyncClient, caller: Caller, endpoint_id: str) -> list[Any]:
    response = await client.get(
        f"{API}/webhook-endpoints/{endpoint_id}/deliveries", headers=caller.headers
    )
    assert response.status_code == 200, response.text
    page: list[Any] = response.json()["data"]["deliveries"]
    return page


async def test_a_delivery_is_signed_per_the_specification_and_carries_the_event(
    client: httpx.AsyncClient,
    caller: Caller,
    sign_in: Callable[..., Any],
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64
    someone_else = await sign_in()
    await credit(someone_else, 700)
    await credit(caller, 5_000)

    await run_jobs()

    [delivery] = receiver.wait_for(1)
    assert delivery.path == "/hooks"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["webhook-timestamp"].isdigit()
    assert independent_signatures(secret, delivery.headers, delivery.body) == [True]
    assert independent_signatures(secret, delivery.headers, delivery.body + b" ") == [False]
    event = delivery.json()
    assert event["type"] == "balance.updated"
    assert event["data"]["wallet_number"] == caller.wallet_number
    assert event["data"]["balance"] == "50.00"
    assert {"id", "type", "version", "created_at", "data"} <= set(event)
    # Someone else's money is never sent to this endpoint.
    assert len(receiver.received) == 1
    [listed] = await deliveries(client, caller, endpoint["id"])
    assert listed["webhook_id"] == delivery.headers["webhook-id"]
    assert listed["status"] == "succeeded"
    assert listed["event_id"] == event["id"]
    [attempt] = listed["attempts"]
    assert attempt["response_status"] == 200
    assert attempt["succeeded"] is True
    assert attempt["latency_ms"] >= 0


async def test_a_receiver_failing_three_times_gets_the_event_once_with_one_webhook_id(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    make_receiver: MakeReceiver,
    run_jobs: RunJobs,
    shift_clock: Shift,
) -> None:
    receiver = make_receiver(statuses=[500, 503, 500])
    endpoint = await create_endpoint(caller, receiver.url)
    await credit(caller, 1_000)
    await run_jobs()
    await run_jobs()
    assert len(receiver.received) == 1  # the next attempt waits for its backoff

    elapsed = timedelta(0)
    for delay in RETRY_DELAYS[:3]:
        shift_clock(elapsed + delay - timedelta(seconds=5))
        await run_jobs()
        assert len(receiver.received) == 1 + RETRY_DELAYS.index(delay)  # not yet due
        elapsed += delay
        shift_clock(elapsed)
        await run_jobs()
    received = receiver.wait_for(4)
    shift_clock(elapsed + sum(RETRY_DELAYS, timedelta(0)))
    await run_jobs()
    shift_clock(timedelta(0))

    assert len(receiver.received) == 4  # one success, then nothing more
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    assert all(independent_signatures(endpoint["secret"], r.headers, r.body) for r in received)
    [listed] = await deliveries(client, caller, endpoint["id"])
    assert listed["status"] == "succeeded"
    assert listed["attempt_count"] == 4
    statuses = [attempt["response_status"] for attempt in reversed(listed["attempts"])]
    assert statuses == [500, 503, 500, 200]


async def test_after_three_days_of_failures_the_endpoint_is_disabled_and_its_owner_emailed(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    make_receiver: MakeReceiver,
    run_jobs: RunJobs,
    shift_clock: Shift,
    mailbox: Mailbox,
) -> None:
    assert sum(RETRY_DELAYS, timedelta(0)) <= timedelta(days=3)
    receiver = make_receiver(statuses=[500] * MAX_ATTEMPTS)
    endpoint = await create_endpoint(caller, receiver.url)
    await credit(caller, 1_000)
    await run_jobs()
    elapsed = timedelta(0)
    for delay in RETRY_DELAYS:
        elapsed += delay
        shift_clock(elapsed)
        await run_jobs()
    shift_clock(timedelta(0))

    assert len(receiver.received) == MAX_ATTEMPTS
    shown = (
        await client.get(f"{API}/webhook-endpoints/{endpoint['id']}", headers=caller.headers)
    ).json()["data"]
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing")
    [listed] = await deliveries(client, caller, endpoint["id"])
    assert (listed["status"], listed["attempt_count"]) == ("failed", MAX_ATTEMPTS)
    [notice] = [m for m in mailbox.to(caller.email) if "webhook" in str(m["Subject"])]
    assert str(notice["Subject"]) == "Your webhook endpoint was disabled"
    assert endpoint["id"] in notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Disabled: new events are not delivered, and a resend must wait for it to be enabled.
    await credit(caller, 1_000)
    await run_jobs()
    assert len(receiver.received) == MAX_ATTEMPTS
    retry_url = f"{API}/webhook-endpoints/{endpoint['id']}/deliveries/{listed['id']}/retry"
    refused = await client.post(retry_url, headers=caller.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "webhook_endpoint_disabled"

    enabled = await client.patch(
        f"{API}/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=caller.headers
    )
    assert enabled.json()["data"]["enabled"] is True
    resent = await client.post(retry_url, headers=caller.headers)
    assert resent.status_code == 202, resent.text
    again = await client.post(retry_url, headers=caller.headers)
    assert again.json()["error"]["code"] == "webhook_delivery_pending"
    await run_jobs()
    assert receiver.received[-1].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
    [*_, first] = await deliveries(client, caller, endpoint["id"])
    assert first["status"] == "succeeded"


async def test_a_redirect_is_never_followed(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    make_receiver: MakeReceiver,
    run_jobs: RunJobs,
) -> None:
    internal = make_receiver()
    redirector = make_receiver(statuses=[302], headers={"location": internal.url})
    endpoint = await create_endpoint(caller, redirector.url)
    await credit(caller, 1_000)
    await run_jobs()

    assert len(redirector.received) == 1
    assert internal.received == []
    [listed] = await deliveries(client, caller, endpoint["id"])
    assert listed["status"] == "pending"  # a redirect is a failed attempt, retried later
    assert listed["attempts"][0]["response_status"] == 302


async def test_the_name_travels_in_the_host_header_to_the_vetted_address(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
) -> None:
    await create_endpoint(caller, f"http://localhost:{receiver.port}/hooks?tenant=7")
    await credit(caller, 1_000)
    await run_jobs()

    [delivery] = receiver.wait_for(1)
    assert delivery.headers["host"] == f"localhost:{receiver.port}"
    assert delivery.path == "/hooks?tenant=7"


async def test_an_endless_answer_is_cut_off_at_the_size_cap(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    make_receiver: MakeReceiver,
    run_jobs: RunJobs,
) -> None:
    endless = make_receiver(endless=True)
    endpoint = await create_endpoint(caller, endless.url)
    await credit(caller, 1_000)
    await run_jobs(webhook_timeout_seconds=30)

    [listed] = await deliveries(client, caller, endpoint["id"])
    [attempt] = listed["attempts"]
    assert (attempt["response_status"], attempt["error"]) == (200, None)
    assert listed["status"] == "succeeded"


async def test_a_rotated_secret_signs_beside_the_new_one_during_the_overlap(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    rotate_url = f"{API}/webhook-endpoints/{endpoint['id']}/rotate-secret"
    rotated = await client.post(rotate_url, json={"overlap_seconds": 3600}, headers=caller.headers)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["data"]["secret"]
    assert new_secret != endpoint["secret"]
    await credit(caller, 1_000)
    await run_jobs()
    [during] = receiver.wait_for(1)
    assert independent_signatures(new_secret, during.headers, during.body) == [True, False]
    assert independent_signatures(endpoint["secret"], during.headers, during.body) == [
        False,
        True,
    ]

    final = await client.post(rotate_url, json={"overlap_seconds": 0}, headers=caller.headers)
    final_secret = final.json()["data"]["secret"]
    await credit(caller, 1_000)
    await run_jobs()
    after = receiver.wait_for(2)[1]
    assert independent_signatures(final_secret, after.headers, after.body) == [True]
    assert independent_signatures(new_secret, after.headers, after.body) == [False]


async def test_deliveries_page_by_cursor_newest_first(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    for _ in range(3):
        await credit(caller, 100)
    await run_jobs()
    url = f"{API}/webhook-endpoints/{endpoint['id']}/deliveries"
    first = (await client.get(url, params={"limit": 2}, headers=caller.headers)).json()["data"]
    second = (
        await client.get(
            url, params={"limit": 2, "cursor": first["next_cursor"]}, headers=caller.headers
        )
    ).json()["data"]
    ids = [d["id"] for d in first["deliveries"] + second["deliveries"]]
    assert len(ids) == 3
    assert ids == sorted(ids, reverse=True)
    assert second["next_cursor"] is None


async def test_a_deleted_endpoint_receives_nothing_more(
    client: httpx.AsyncClient,
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
    app_database: Database,
    app_settings: Settings,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    await credit(caller, 1_000)
    await run_fan_out(app_database, app_settings, {})  # a delivery waits for its attempt
    deleted = await client.delete(
        f"{API}/webhook-endpoints/{endpoint['id']}", headers=caller.headers
    )
    assert deleted.status_code == 200, deleted.text
    await run_jobs()
    await credit(caller, 1_000)
    await run_jobs()
    assert receiver.received == []
    async with app_database.transaction() as session:
        statuses = (
            await session.scalars(
                select(WebhookDelivery.status).where(
                    WebhookDelivery.endpoint_id == uuid.UUID(endpoint["id"])
                )
            )
        ).all()
    assert statuses == ["failed"]
