"""API keys through the HTTP API: create, list, roll over, revoke, and authenticate."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from coffer.apikeys.keys import hash_key
from coffer.db import Database
from coffer.kit.clock import add_months
from coffer.models import ApiKey, User
from tests.fixtures.http import API, Caller, key_headers

SignIn = Callable[..., Awaitable[Caller]]
CreateKey = Callable[..., Awaitable[dict[str, Any]]]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_created_key_is_shown_once_stored_hashed_and_works(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey, app_database: Database
) -> None:
    caller = await sign_in()
    created = await create_key(caller, ["read", "transfer"], name="payroll")

    api_key = created["api_key"]
    assert api_key.startswith("sk_test_")
    assert created["prefix"] == api_key[:16]
    assert created["permissions"] == ["read", "transfer"]
    assert created["name"] == "payroll"
    async with app_database.transaction() as session:
        row = (
            await session.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])))
        ).scalar_one()
    assert api_key not in (row.key_hash, row.prefix)
    assert row.key_hash == hash_key(client._transport.app.state.settings, api_key)  # type: ignore[attr-defined]

    balance = await client.get(f"{API}/wallet/balance", headers=key_headers(api_key))
    assert balance.status_code == 200
    assert balance.json()["data"]["wallet_number"] == caller.wallet_number

    listed = await client.get(f"{API}/keys", headers=caller.headers)
    assert listed.status_code == 200
    assert api_key not in listed.text
    assert row.key_hash not in listed.text
    (entry,) = listed.json()["data"]["keys"]
    assert entry["status"] == "active"
    assert entry["prefix"] == created["prefix"]
    assert entry["last_used_at"] is not None


async def test_sixth_active_key_is_refused_until_one_is_revoked(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    keys = [await create_key(caller, ["read"]) for _ in range(5)]
    body = {"name": "sixth", "permissions": ["read"], "expiry": "1H"}

    refused = await client.post(f"{API}/keys/create", json=body, headers=caller.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "api_key_limit_reached"

    revoked = await client.delete(f"{API}/keys/{keys[0]['id']}", headers=caller.headers)
    assert revoked.status_code == 200
    again = await client.post(f"{API}/keys/create", json=body, headers=caller.headers)
    assert again.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "permissions": ["read", "admin"], "expiry": "1D"},
        {"name": "x", "permissions": [], "expiry": "1D"},
        {"name": "x", "permissions": ["read"], "expiry": "2W"},
        {"name": "x", "permissions": ["read"]},
        {"name": "", "permissions": ["read"], "expiry": "1D"},
        {"name": "x", "permissions": "read", "expiry": "1D"},
        {"name": "x", "permissions": ["read"], "expiry": "1D", "owner": "someone"},
    ],
)
async def test_malformed_key_requests_are_422(
    client: httpx.AsyncClient, sign_in: SignIn, body: dict[str, Any]
) -> None:
    caller = await sign_in()
    response = await client.post(f"{API}/keys/create", json=body, headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ("1H", lambda t: t + timedelta(hours=1)),
        ("1D", lambda t: t + timedelta(days=1)),
        ("1M", lambda t: add_months(t, 1)),
        ("1Y", lambda t: add_months(t, 12)),
    ],
)
async def test_expiry_adds_hours_days_or_calendar_months(
    sign_in: SignIn,
    create_key: CreateKey,
    expiry: str,
    expected: Callable[[datetime], datetime],
) -> None:
    caller = await sign_in()
    created = await create_key(caller, ["read"], expiry=expiry)
    assert parse_time(created["expires_at"]) == expected(parse_time(created["created_at"]))


def test_a_calendar_month_after_the_31st_is_the_months_last_day() -> None:
    january = datetime.fromisoformat("2027-01-31T10:00:00+00:00")
    assert add_months(january, 1) == datetime.fromisoformat("2027-02-28T10:00:00+00:00")
    leap = datetime.fromisoformat("2028-02-29T10:00:00+00:00")
    assert add_months(leap, 12) == datetime.fromisoformat("2029-02-28T10:00:00+00:00")
    assert add_months(datetime.fromisoformat("2027-12-15T00:00:00+00:00"), 1).year == 2028


async def test_list_reports_active_expired_and_revoked_newest_first_with_a_cursor(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_key: CreateKey,
    shift_clock: Callable[[timedelta], None],
    sign_in_again: Callable[[Caller], Awaitable[Caller]],
) -> None:
    shift_clock(timedelta(hours=-2))
    caller = await sign_in()
    short = await create_key(caller, ["read"], expiry="1H", name="short")
    revoked = await create_key(caller, ["read"], expiry="1D", name="revoked")
    active = await create_key(caller, ["read"], expiry="1Y", name="active")
    await client.delete(f"{API}/keys/{revoked['id']}", headers=caller.headers)
    shift_clock(timedelta(0))
    caller = await sign_in_again(caller)

    first = await client.get(f"{API}/keys", params={"limit": 2}, headers=caller.headers)
    assert first.status_code == 200, first.text
    page = first.json()["data"]
    assert [k["id"] for k in page["keys"]] == [active["id"], revoked["id"]]
    assert page["next_cursor"]
    second = await client.get(
        f"{API}/keys", params={"limit": 2, "cursor": page["next_cursor"]}, headers=caller.headers
    )
    rest = second.json()["data"]
    assert [k["id"] for k in rest["keys"]] == [short["id"]]
    assert rest["next_cursor"] is None
    statuses = {k["name"]: k["status"] for k in [*page["keys"], *rest["keys"]]}
    assert statuses == {"short": "expired", "revoked": "revoked", "active": "active"}


async def test_a_tampered_cursor_is_422(client: httpx.AsyncClient, sign_in: SignIn) -> None:
    caller = await sign_in()
    for cursor in ("not-a-cursor", "WzFd", "WyJ4IiwieSJd"):
        response = await client.get(
            f"{API}/keys", params={"cursor": cursor}, headers=caller.headers
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_cursor"


async def test_rollover_needs_an_expired_key_and_copies_name_and_permissions(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_key: CreateKey,
    shift_clock: Callable[[timedelta], None],
    sign_in_again: Callable[[Caller], Awaitable[Caller]],
) -> None:
    shift_clock(timedelta(hours=-1, seconds=-1))
    caller = await sign_in()
    old = await create_key(caller, ["read", "transfer"], expiry="1H", name="billing")
    body = {"expired_key_id": old["id"], "expiry": "1D"}

    early = await client.post(f"{API}/keys/rollover", json=body, headers=caller.headers)
    assert early.status_code == 400
    assert early.json()["error"]["code"] == "key_not_expired"

    shift_clock(timedelta(0))
    caller = await sign_in_again(caller)
    expired = await client.get(f"{API}/wallet/balance", headers=key_headers(old["api_key"]))
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "api_key_expired"

    rolled = await client.post(f"{API}/keys/rollover", json=body, headers=caller.headers)
    assert rolled.status_code == 201
    new = rolled.json()["data"]
    assert new["id"] != old["id"]
    assert new["api_key"] != old["api_key"]
    assert (new["name"], new["permissions"]) == ("billing", ["read", "transfer"])
    works = await client.get(f"{API}/wallet/balance", headers=key_headers(new["api_key"]))
    assert works.status_code == 200


async def test_rollover_and_revoke_of_another_users_key_are_404(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    owner, other = await sign_in(), await sign_in()
    key = await create_key(owner, ["read"])

    rollover = await client.post(
        f"{API}/keys/rollover",
        json={"expired_key_id": key["id"], "expiry": "1D"},
        headers=other.headers,
    )
    assert rollover.status_code == 404
    assert rollover.json()["error"]["code"] == "api_key_not_found"
    revoke = await client.delete(f"{API}/keys/{key['id']}", headers=other.headers)
    assert revoke.status_code == 404
    unknown = await client.delete(f"{API}/keys/{uuid.uuid4()}", headers=owner.headers)
    assert unknown.status_code == 404
    malformed = await client.delete(f"{API}/keys/not-a-uuid", headers=owner.headers)
    assert malformed.status_code == 422
    still = await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    assert still.status_code == 200


async def test_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    key = await create_key(caller, ["read"])
    assert (
        await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    ).status_code == 200

    revoked = await client.delete(f"{API}/keys/{key['id']}", headers=caller.headers)
    assert revoked.json()["data"]["status"] == "revoked"
    refused = await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_revoked"


async def test_api_keys_never_manage_api_keys(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    key = await create_key(caller, ["read", "deposit", "transfer", "withdraw"])
    headers = key_headers(key["api_key"])
    attempts = [
        client.post(
            f"{API}/keys/create",
            json={"name": "x", "permissions": ["read"], "expiry": "1D"},
            headers=headers,
        ),
        client.get(f"{API}/keys", headers=headers),
        client.post(
            f"{API}/keys/rollover",
            json={"expired_key_id": key["id"], "expiry": "1D"},
            headers=headers,
        ),
        client.delete(f"{API}/keys/{key['id']}", headers=headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    "presented",
    [
        "sk_test_",
        "not-a-key",
        "sk_test_" + "A" * 43,
        "sk_live_" + "A" * 43,
        "sk_test_" + "A" * 44,
    ],
)
async def test_unknown_or_malformed_keys_are_401(client: httpx.AsyncClient, presented: str) -> None:
    response = await client.get(f"{API}/wallet/balance", headers=key_headers(presented))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_a_key_with_one_character_changed_is_refused(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    api_key = (await create_key(caller, ["read"]))["api_key"]
    forged = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")
    response = await client.get(f"{API}/wallet/balance", headers=key_headers(forged))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_sending_a_token_and_a_key_together_is_401(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey
) -> None:
    caller = await sign_in()
    api_key = (await create_key(caller, ["read"]))["api_key"]
    response = await client.get(
        f"{API}/wallet/balance", headers={**caller.headers, **key_headers(api_key)}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_a_deactivated_users_keys_stop_working(
    client: httpx.AsyncClient, sign_in: SignIn, create_key: CreateKey, app_database: Database
) -> None:
    caller = await sign_in()
    api_key = (await create_key(caller, ["read"]))["api_key"]
    async with app_database.transaction() as session:
        await session.execute(update(User).where(User.id == caller.user_id).values(is_active=False))
    response = await client.get(f"{API}/wallet/balance", headers=key_headers(api_key))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_inactive"


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    create_key: CreateKey,
    app_database: Database,
    shift_clock: Callable[[timedelta], None],
) -> None:
    shift_clock(timedelta(minutes=-5))
    caller = await sign_in()
    key = await create_key(caller, ["read"])
    key_id = uuid.UUID(key["id"])

    async def last_used() -> datetime | None:
        async with app_database.transaction() as session:
            return (
                await session.execute(select(ApiKey.last_used_at).where(ApiKey.id == key_id))
            ).scalar_one()

    assert await last_used() is None
    await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    first = await last_used()
    assert first is not None
    shift_clock(timedelta(minutes=-5, seconds=30))
    await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    assert await last_used() == first
    shift_clock(timedelta(minutes=-5, seconds=91))
    await client.get(f"{API}/wallet/balance", headers=key_headers(key["api_key"]))
    later = await last_used()
    assert later is not None
    assert later - first >= timedelta(seconds=60)
