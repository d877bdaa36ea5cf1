"""The user pages over plain HTTP: every page renders, every form refuses a post without its
CSRF token, and a transfer form submitted twice moves money once."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from coffer.db import Database
from coffer.identity import repository
from coffer.transfers.tasks import process_pending
from coffer.wallets import service as wallets
from coffer.web.router import web_router
from tests.fixtures.factories import assert_ledger_sound, fund
from tests.web.conftest import Browserless
from tests.web.forms import csrf_token, hidden_fields

PAGES = [
    "/app/",
    "/app/deposit",
    "/app/transfer",
    "/app/withdraw",
    "/app/history",
    "/app/bank-accounts",
    "/app/api-keys",
    "/app/security",
    "/app/profile",
    "/app/step-up",
]


def _post_paths() -> list[str]:
    """Every form target of the web app, its path parameters filled with a placeholder."""
    found = []

    def walk(router: APIRouter, prefix: str) -> None:
        for route in router.routes:
            if isinstance(route, APIRoute):
                if "POST" in route.methods:
                    found.append(prefix + route.path)
            else:
                walk(route.original_router, prefix + route.include_context.prefix)  # type: ignore[attr-defined]

    router = web_router()
    walk(router, "")
    return sorted(re.sub(r"\{[a-z_]+\}", "1", path) for path in found)


async def _funded_user(web: Browserless, minor: int) -> str:
    email = await web.sign_up()
    database: Database = web.api.app.state.database
    async with database.transaction() as session:
        user = await repository.get_by_email(session, email)
        assert user is not None
        await fund(session, await wallets.primary_wallet(session, user.id), minor)
    return email


async def test_every_user_page_renders_for_a_signed_in_user(web: Browserless) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    for path in PAGES:
        page = await web.client.get(path)
        assert page.status_code == 200, (path, page.text[-2000:])
        assert 'href="#main"' in page.text
        assert csrf_token(page)
    csv = await web.client.get("/app/history.csv")
    assert csv.status_code == 200
    assert csv.text.startswith("created_at,type,status,amount")


async def test_every_form_refuses_a_post_without_its_csrf_token(web: Browserless) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    paths = _post_paths()
    assert "/app/transfer/confirm" in paths
    assert len(paths) > 15
    for path in paths:
        answer = await web.client.post(path, data={"amount": "1.00", "recipient": email})
        assert answer.status_code == 403, (path, answer.status_code)
        assert "could not be verified" in answer.text, path


async def test_a_transfer_form_submitted_twice_moves_money_once(web: Browserless) -> None:
    sender = await _funded_user(web, 50_000)
    recipient_client = web.client
    recipient = await web.sign_up()
    await web.sign_in(sender)
    form = await recipient_client.get("/app/transfer")
    review = await web.post_form(
        "/app/transfer/review", form, recipient=recipient, amount="120.50", narration="rent"
    )
    assert review.status_code == 200, review.text
    assert "Ada" in review.text  # the recipient's name, before anything moves
    fields = hidden_fields(review)
    assert fields["idempotency_key"].startswith("web-")
    first = await web.client.post("/app/transfer/confirm", data=fields)
    second = await web.client.post("/app/transfer/confirm", data=fields)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    await process_pending(web.api.app.state.database, batch_size=100)
    status = await web.client.get(first.headers["location"])
    assert "Transfer completed" in status.text
    home = await web.client.get("/app/")
    assert "379.50 NGN" in home.text
    async with web.api.app.state.database.transaction() as session:
        await assert_ledger_sound(session)


@pytest.mark.parametrize("amount", ["0", "-5", "1.234", "abc"])
async def test_a_bad_amount_is_shown_on_the_form(web: Browserless, amount: str) -> None:
    email = await _funded_user(web, 1_000)
    await web.sign_in(email)
    form = await web.client.get("/app/transfer")
    answer = await web.post_form(
        "/app/transfer/review", form, recipient="1234567890123", amount=amount
    )
    assert answer.status_code in (404, 422)
    assert "Not done:" in answer.text


async def test_history_pages_by_keyset_filters_and_exports_csv(web: Browserless) -> None:
    email = await web.sign_up()
    database: Database = web.api.app.state.database
    async with database.transaction() as session:
        user = await repository.get_by_email(session, email)
        assert user is not None
        wallet = await wallets.primary_wallet(session, user.id)
        for minor in range(101, 131):
            await fund(session, wallet, minor)
    await web.sign_in(email)
    first = await web.client.get("/app/history")
    assert first.text.count("<tr>") == 25 + 1  # the header row and a page of 25
    assert "+1.30 NGN" in first.text  # newest first
    older = re.search(r'href="(/app/history\?[^"]+)" rel="next"', first.text)
    assert older is not None
    second = await web.client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("<tr>") == 5 + 1
    assert "+1.01 NGN" in second.text
    assert 'rel="next"' not in second.text
    none = await web.client.get("/app/history", params={"type": "deposit"})
    assert "No transactions yet." in none.text
    exported = await web.client.get("/app/history.csv", params={"type": "adjustment"})
    lines = exported.text.strip().splitlines()
    assert len(lines) == 31
    assert lines[1].split(",")[1:5] == ["adjustment", "success", "1.30", "NGN"]
    refused = await web.client.get("/app/history", params={"since": "yesterday"})
    assert refused.status_code == 422
    assert "Dates look like 2026-12-31." in refused.text
