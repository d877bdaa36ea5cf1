"""The admin API: who may call it, and what each action does (its effect, audit row, email)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from coffer.idempotency.service import PURGE_JOB
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus, Role
from coffer.wallets.numbers import generate_wallet_number
from tests.admin.conftest import Person, person
from tests.fixtures.factories import assert_ledger_sound
from tests.fixtures.identity import Api, MakeApi
from tests.fixtures.sms import PRODUCTION_SMS


def admin_routes(user_id: str, wallet_number: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    reason = {"reason": "support ticket 42"}
    money = {"amount": "10.00", "reason": "support ticket 42"}
    return [
        ("GET", "/admin/users?q=ada", None),
        ("GET", f"/admin/users/{user_id}", None),
        ("POST", f"/admin/users/{user_id}/activate", reason),
        ("POST", f"/admin/users/{user_id}/deactivate", reason),
        ("POST", f"/admin/users/{user_id}/reset-2fa", reason),
        ("POST", f"/admin/users/{user_id}/grant-admin", reason),
        ("POST", f"/admin/users/{user_id}/revoke-admin", reason),
        (
            "POST",
            f"/admin/users/{user_id}/limits",
            {
                "kind": "transfer",
                "currency": "NGN",
                "limit": "500000.00",
                "expires_at": "2099-01-01T00:00:00Z",
                "reason": "vip",
            },
        ),
        ("GET", f"/admin/users/{user_id}/transactions", None),
        ("POST", f"/admin/wallets/{wallet_number}/credit", money),
        ("POST", f"/admin/wallets/{wallet_number}/debit", money),
        ("POST", f"/admin/wallets/{wallet_number}/freeze", reason),
        ("POST", f"/admin/wallets/{wallet_number}/unfreeze", reason),
        ("GET", "/admin/ledger/verify", None),
        ("GET", "/admin/jobs/dead", None),
        ("POST", "/admin/jobs/1/retry", None),
        ("GET", "/admin/audit", None),
    ]


async def _call(
    api: Api, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> tuple[int, str | None]:
    response = await api.client.request(method, path, json=body, headers=headers)
    document = response.json()
    return response.status_code, (document.get("error") or {}).get("code")


async def test_every_admin_route_refuses_users_and_api_keys(api: Api) -> None:
    user = await person(api, fund_minor=10_000)
    admin = await person(api, role=Role.ADMIN)
    created = await api.client.post(
        "/keys/create",
        json={"name": "ops", "permissions": ["read", "deposit", "transfer"], "expiry": "1D"},
        headers=admin.headers,
    )
    admin_key = {"x-api-key": created.json()["data"]["api_key"]}
    for method, path, body in admin_routes(user.user_id, user.wallet_number):
        assert await _call(api, method, path, body, user.headers) == (403, "permission_denied"), (
            path
        )
        assert await _call(api, method, path, body, admin_key) == (403, "permission_denied"), path
        assert (await _call(api, method, path, body, {}))[0] == 401, path


async def test_in_production_an_admin_without_two_factor_is_refused(
    make_api: MakeApi,
) -> None:
    async with make_api(
        env="production", secret_key="p" * 40, sandbox_in_production=True, **PRODUCTION_SMS
    ) as api:
        user = await person(api)
        admin = await person(api, role=Role.ADMIN)
        for method, path, body in admin_routes(user.user_id, user.wallet_number):
            refused = await _call(api, method, path, body, admin.headers)
            assert refused == (403, "admin_requires_two_factor"), path


async def _audit(api: Api, admin: Person, user: Person) -> list[dict[str, Any]]:
    response = await api.client.get(f"/admin/audit?user_id={user.user_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]["events"]
    return [event for event in events if event["action"].startswith("admin.")]


async def _balance(api: Api, user: Person) -> str:
    response = await api.client.get("/wallet/balance", headers=user.headers)
    return str(response.json()["data"]["balance"])


async def _subjects(api: Api, user: Person) -> list[str]:
    await api.deliver_email()
    return [str(message["Subject"]) for message in api.mailbox.to(user.email)]


async def _ledger_ok(api: Api) -> None:
    async with api.app.state.database.transaction() as session:
        await assert_ledger_sound(session)


async def test_credit_and_debit_post_once_with_a_reason_the_user_sees(api: Api) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    path = f"/admin/wallets/{user.wallet_number}"
    body = {"amount": "2500.50", "reason": "refund for ticket 77"}
    headers = {**admin.headers, "Idempotency-Key": f"credit-{uuid.uuid4()}"}

    first = await api.client.post(f"{path}/credit", json=body, headers=headers)
    again = await api.client.post(f"{path}/credit", json=body, headers=headers)

    assert first.status_code == 200, first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["data"] == first.json()["data"]
    assert first.json()["data"]["balance"] == "2500.50"
    assert await _balance(api, user) == "2500.50"

    debit = await api.client.post(
        f"{path}/debit", json={"amount": "500.50", "reason": "chargeback"}, headers=admin.headers
    )
    assert debit.status_code == 200, debit.text
    too_much = await api.client.post(
        f"{path}/debit", json={"amount": "9999.00", "reason": "mistake"}, headers=admin.headers
    )
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (400, "insufficient_funds")
    no_reason = await api.client.post(f"{path}/credit", json={"amount": "1"}, headers=admin.headers)
    assert no_reason.status_code == 422
    assert await _balance(api, user) == "2000.00"

    history = (await api.client.get("/wallet/transactions", headers=user.headers)).json()["data"]
    rows = [(t["type"], t["amount"], t["metadata"]["reason"]) for t in history["transactions"]]
    assert rows == [
        ("adjustment", "500.50", "chargeback"),
        ("adjustment", "2500.50", "refund for ticket 77"),
    ]
    actions = [(e["action"], e["reason"], e["actor"]) for e in await _audit(api, admin, user)]
    assert actions == [
        ("admin.wallet_debited", "chargeback", f"user:{admin.user_id}"),
        ("admin.wallet_credited", "refund for ticket 77", f"user:{admin.user_id}"),
    ]
    subjects = await _subjects(api, user)
    assert "Your wallet was credited 2,500.50 NGN" in subjects
    assert "Your wallet was debited 500.50 NGN" in subjects
    assert subjects.count("Your wallet was credited 2,500.50 NGN") == 1
    await _ledger_ok(api)


async def _transfer(api: Api, sender: Person, recipient: Person) -> tuple[int, str | None]:
    response = await api.client.post(
        "/wallet/transfer",
        json={"wallet_number": recipient.wallet_number, "amount": "10.00"},
        headers=sender.headers,
    )
    return response.status_code, (response.json().get("error") or {}).get("code")


async def test_a_frozen_wallet_moves_no_money_either_way_until_unfrozen(api: Api) -> None:
    frozen = await person(api, fund_minor=100_000)
    other = await person(api, fund_minor=100_000)
    admin = await person(api, role=Role.ADMIN)
    path = f"/admin/wallets/{frozen.wallet_number}"

    freeze = await api.client.post(
        f"{path}/freeze", json={"reason": "suspected fraud"}, headers=admin.headers
    )
    assert freeze.json()["data"]["status"] == "frozen", freeze.text
    again = await api.client.post(f"{path}/freeze", json={"reason": "x" * 5}, headers=admin.headers)
    assert again.json()["error"]["code"] == "wallet_already_frozen"

    assert await _transfer(api, frozen, other) == (403, "wallet_frozen")
    assert await _transfer(api, other, frozen) == (400, "recipient_wallet_frozen")

    unfreeze = await api.client.post(
        f"{path}/unfreeze", json={"reason": "cleared by compliance"}, headers=admin.headers
    )
    assert unfreeze.json()["data"]["status"] == "active", unfreeze.text
    assert await _transfer(api, frozen, other) == (202, None)
    assert await _transfer(api, other, frozen) == (202, None)

    actions = [(e["action"], e["reason"]) for e in await _audit(api, admin, frozen)]
    assert actions[:2] == [
        ("admin.wallet_unfrozen", "cleared by compliance"),
        ("admin.wallet_frozen", "suspected fraud"),
    ]
    subjects = await _subjects(api, frozen)
    assert "Your wallet was frozen" in subjects
    assert "Your wallet was unfrozen" in subjects
    await _ledger_ok(api)


async def test_deactivation_ends_sessions_and_keys_and_activation_lets_the_user_back(
    api: Api,
) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    key = await api.client.post(
        "/keys/create",
        json={"name": "shop", "permissions": ["read"], "expiry": "1D"},
        headers=user.headers,
    )
    key_headers = {"x-api-key": key.json()["data"]["api_key"]}
    assert (await api.client.get("/wallet/balance", headers=key_headers)).status_code == 200

    off = await api.client.post(
        f"/admin/users/{user.user_id}/deactivate",
        json={"reason": "account sold"},
        headers=admin.headers,
    )
    assert off.json()["data"]["is_active"] is False, off.text
    assert (await api.client.get("/wallet/balance", headers=user.headers)).status_code in (401, 403)
    assert (await api.client.get("/wallet/balance", headers=key_headers)).status_code in (401, 403)

    on = await api.client.post(f"/admin/users/{user.user_id}/activate", headers=admin.headers)
    assert on.json()["data"]["is_active"] is True, on.text
    assert (await api.client.get("/wallet/balance", headers=user.headers)).status_code == 401
    await api.login(user.email)
    actions = [e["action"] for e in await _audit(api, admin, user)]
    assert actions[:2] == ["admin.user_activated", "admin.user_deactivated"]


async def test_search_finds_users_by_email_phone_name_or_wallet_and_detail_shows_them(
    api: Api,
) -> None:
    user = await person(api, fund_minor=12_345)
    admin = await person(api, role=Role.ADMIN)

    for query in (user.email[:14].upper(), user.wallet_number):
        found = await api.client.get(f"/admin/users?q={query}&limit=100", headers=admin.headers)
        assert user.user_id in [u["id"] for u in found.json()["data"]["users"]], query
    by_name = await api.client.get("/admin/users?q=obi&limit=1", headers=admin.headers)
    assert by_name.json()["data"]["next_cursor"] is not None
    nobody = await api.client.get(f"/admin/users?q={uuid.uuid4().hex}", headers=admin.headers)
    assert nobody.json()["data"] == {"users": [], "next_cursor": None}

    detail = (await api.client.get(f"/admin/users/{user.user_id}", headers=admin.headers)).json()
    data = detail["data"]
    assert data["user"]["email"] == user.email
    assert [(w["wallet_number"], w["balance"]) for w in data["wallets"]] == [
        (user.wallet_number, "123.45")
    ]
    assert len(data["sessions"]) == 1
    assert data["two_factor_enabled"] is False
    missing = await api.client.get(f"/admin/users/{uuid.uuid4()}", headers=admin.headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "user_not_found")

    history = await api.client.get(
        f"/admin/users/{user.user_id}/transactions?type=adjustment", headers=admin.headers
    )
    assert [t["amount"] for t in history.json()["data"]["transactions"]] == ["123.45"]


async def test_granting_and_taking_the_admin_role(api: Api) -> None:
    user = await person(api)
    admin = await person(api, role=Role.ADMIN)
    granted = await api.client.post(
        f"/admin/users/{user.user_id}/grant-admin",
        json={"reason": "new operator"},
        headers=admin.headers,
    )
    assert granted.json()["data"]["role"] == "admin"
    assert (await api.client.get("/admin/audit", headers=user.headers)).status_code == 200
    taken = await api.client.post(
        f"/admin/users/{user.user_id}/revoke-admin",
        json={"reason": "left the team"},
        headers=admin.headers,
    )
    assert taken.json()["data"]["role"] == "user"
    assert (await api.client.get("/admin/audit", headers=user.headers)).status_code == 403
    actions = [e["action"] for e in await _audit(api, admin, user)]
    assert actions[:2] == ["admin.role_revoked", "admin.role_granted"]


async def test_a_limit_override_replaces_the_default_until_it_expires(api: Api) -> None:
    user = await person(api, fund_minor=1_000_000)
    other = await person(api)
    admin = await person(api, role=Role.ADMIN)
    override = await api.client.post(
        f"/admin/users/{user.user_id}/limits",
        json={
            "kind": "transfer",
            "currency": "NGN",
            "limit": "15.00",
            "expires_at": "2099-01-01T00:00:00Z",
            "reason": "risk review",
        },
        headers=admin.headers,
    )
    assert override.json()["data"]["limit"] == "15.00", override.text
    assert await _transfer(api, user, other) == (202, None)
    assert await _transfer(api, user, other) == (403, "daily_limit_exceeded")
    past = await api.client.post(
        f"/admin/users/{user.user_id}/limits",
        json={
            "kind": "transfer",
            "currency": "NGN",
            "limit": "15.00",
            "expires_at": "2001-01-01T00:00:00Z",
            "reason": "risk review",
        },
        headers=admin.headers,
    )
    assert past.json()["error"]["code"] == "expiry_in_past"
    [event] = await _audit(api, admin, user)
    assert (event["action"], event["details"]["limit"]) == ("admin.limit_overridden", "15.00")


async def test_ledger_verify_and_dead_jobs(api: Api) -> None:
    admin = await person(api, role=Role.ADMIN)
    report = (await api.client.get("/admin/ledger/verify", headers=admin.headers)).json()["data"]
    assert report["ok"] is True
    assert {check["name"] for check in report["checks"]}
    dead = await api.client.get("/admin/jobs/dead", headers=admin.headers)
    assert dead.status_code == 200
    assert isinstance(dead.json()["data"]["jobs"], list)


@pytest.mark.parametrize("route", ["credit", "debit"])
async def test_an_unknown_wallet_is_not_found(api: Api, route: str) -> None:
    admin = await person(api, role=Role.ADMIN)
    response = await api.client.post(
        f"/admin/wallets/{generate_wallet_number()}/{route}",
        json={"amount": "1.00", "reason": "test"},
        headers=admin.headers,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "wallet_not_found")


async def test_an_admin_retries_a_dead_job_once(api: Api) -> None:
    admin = await person(api, role=Role.ADMIN)
    async with api.app.state.database.transaction() as session:
        job = OutboxJob(
            name=PURGE_JOB,
            payload={},
            status=OutboxStatus.DEAD,
            attempts=10,
            last_error="gave up",
            run_at=utcnow(),
            created_at=utcnow(),
        )
        session.add(job)
        await session.flush()
        job_id = job.id
    retried = await api.client.post(f"/admin/jobs/{job_id}/retry", headers=admin.headers)
    assert retried.status_code == 200, retried.text
    async with api.app.state.database.read() as session:
        row = await session.get(OutboxJob, job_id)
        assert row is not None
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    listed = (await api.client.get("/admin/jobs/dead", headers=admin.headers)).json()["data"]
    assert job_id not in [j["id"] for j in listed["jobs"]]
    audit = (await api.client.get("/admin/audit", headers=admin.headers)).json()["data"]
    event = audit["events"][0]
    assert (event["action"], event["details"], event["actor"]) == (
        "admin.job_retried",
        {"job_id": job_id},
        f"user:{admin.user_id}",
    )
    again = await api.client.post(f"/admin/jobs/{job_id}/retry", headers=admin.headers)
    assert (again.status_code, again.json()["error"]["code"]) == (404, "dead_job_not_found")
