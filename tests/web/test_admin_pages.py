"""The admin pages in a real Chromium against a running server: an admin finds a user, freezes
their wallet (and the user's transfer is then refused in words), credits them (once, however
often the form is sent), resets nothing without their 2FA code when they have 2FA, retries a
dead job and verifies the ledger; a non-admin is refused. axe-core checks every admin page, and
the tests take the README's screenshot of the admin user page."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pyotp
from playwright.sync_api import Page, expect

from coffer.db import Database
from coffer.idempotency.service import PURGE_JOB
from coffer.kit.clock import utcnow
from coffer.models import OutboxJob, OutboxStatus
from tests.fixtures.browser import (
    CofferServer,
    NewPage,
    ServerUser,
    StartServer,
    assert_accessible,
    beside_the_browser,
    readme_screenshot,
    sign_in_through_the_page,
)


def _open_user(page: Page, server: CofferServer, user: ServerUser) -> None:
    page.goto(server.url("/app/admin/users"))
    page.get_by_label("Find a user").fill(user.email)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=user.email).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Admin ·")


def _wallet_section(page: Page, user: ServerUser):  # type: ignore[no-untyped-def]
    return page.get_by_role("region", name=f"NGN wallet {user.wallet_number}")


def _transfer(page: Page, server: CofferServer, recipient: ServerUser, amount: str) -> None:
    """The user's transfer page: recipient and amount, then the confirmation step if the
    review lets it through."""
    page.goto(server.url("/app/transfer"))
    page.get_by_label("Recipient", exact=True).fill(recipient.wallet_number)
    page.get_by_label("Amount", exact=True).fill(amount)
    page.get_by_role("button", name="Review").click()
    send = page.get_by_role("button", name=re.compile(r"^Send "))
    refused = page.get_by_role("alert")
    expect(send.or_(refused)).to_be_visible()
    if send.is_visible():
        send.click()


def test_an_admin_freezes_a_user_who_then_cannot_transfer(
    new_page: NewPage, coffer_server: CofferServer
) -> None:
    admin = coffer_server.create_user(admin=True, name="Ada Admin")
    alice = coffer_server.create_user(name="Alice Frozen")
    bob = coffer_server.create_user(name="Bob Payee")
    coffer_server.credit(alice.wallet_number, "100.00")

    admin_page = new_page()
    sign_in_through_the_page(admin_page, coffer_server, admin)
    _open_user(admin_page, coffer_server, alice)
    wallet = _wallet_section(admin_page, alice)
    wallet.get_by_label("Reason").last.fill("suspicious activity reported")
    wallet.get_by_role("button", name=f"Freeze wallet {alice.wallet_number}").click()
    expect(admin_page.get_by_role("status")).to_contain_text("Wallet frozen")
    expect(_wallet_section(admin_page, alice).get_by_text("frozen", exact=True)).to_be_visible()
    assert_accessible(admin_page)

    user_page = new_page()
    sign_in_through_the_page(user_page, coffer_server, alice)
    _transfer(user_page, coffer_server, bob, "10.00")
    expect(user_page.get_by_role("alert")).to_contain_text("This wallet is frozen")
    user_page.goto(coffer_server.url("/app/"))
    expect(user_page.get_by_test_id("balance-NGN")).to_have_text("100.00 NGN")

    _open_user(admin_page, coffer_server, alice)
    wallet = _wallet_section(admin_page, alice)
    wallet.get_by_label("Reason").last.fill("cleared after review")
    wallet.get_by_role("button", name=f"Unfreeze wallet {alice.wallet_number}").click()
    expect(admin_page.get_by_role("status")).to_contain_text("Wallet unfrozen")


def _credit_three_times_at_once(page: Page, server: CofferServer, user: ServerUser) -> list[Any]:
    """Fill the credit form for 1,250.50 and send it three times at once (a triple click with
    JavaScript off); how each post was answered: a redirect to the outcome, or a status."""
    _open_user(page, server, user)
    wallet = _wallet_section(page, user)
    wallet.get_by_label("Credit (add money)").check()
    wallet.get_by_label("Amount (NGN)").fill("1250.50")
    wallet.get_by_label("Reason").first.fill("goodwill for the outage")
    form = wallet.locator("form", has=page.get_by_label("Amount (NGN)"))
    answers: list[Any] = form.evaluate(
        """async (form) => {
            const body = new URLSearchParams(new FormData(form));
            const send = () => fetch(form.action, {method: "POST", body, redirect: "manual"});
            const answers = await Promise.all([send(), send(), send()]);
            return answers.map((r) => (r.type === "opaqueredirect" ? "redirect" : r.status));
        }"""
    )
    return answers


def test_a_credit_form_sent_three_times_at_once_credits_once_on_postgresql(
    new_page: NewPage, start_server: StartServer
) -> None:
    with start_server(backend="postgres") as server:
        admin = server.create_user(admin=True)
        grace = server.create_user(name="Grace Concurrent")
        page = new_page()
        sign_in_through_the_page(page, server, admin)
        answers = _credit_three_times_at_once(page, server, grace)
        # One post credits; the others replay its outcome or, while it still holds the key,
        # are told it is being processed (409). None credits again.
        assert "redirect" in answers
        assert set(answers) <= {"redirect", 409}, answers
        page.reload()
        expect(page.get_by_test_id(f"admin-balance-{grace.wallet_number}")).to_have_text(
            "1,250.50 NGN"
        )
        server.coffer("ledger", "verify")


def test_an_admin_credit_shows_in_the_users_balance_once(
    new_page: NewPage, coffer_server: CofferServer
) -> None:
    admin = coffer_server.create_user(admin=True)
    bob = coffer_server.create_user(name="Bob Credited")

    admin_page = new_page()
    sign_in_through_the_page(admin_page, coffer_server, admin)
    assert _credit_three_times_at_once(admin_page, coffer_server, bob) == ["redirect"] * 3
    admin_page.reload()
    expect(
        _wallet_section(admin_page, bob).get_by_test_id(f"admin-balance-{bob.wallet_number}")
    ).to_have_text("1,250.50 NGN")
    readme_screenshot(admin_page, "admin-user")
    assert_accessible(admin_page)

    user_page = new_page()
    sign_in_through_the_page(user_page, coffer_server, bob)
    expect(user_page.get_by_test_id("balance-NGN")).to_have_text("1,250.50 NGN")
    coffer_server.email_saying(bob.email, "goodwill for the outage")


def test_every_admin_page_passes_axe(new_page: NewPage, coffer_server: CofferServer) -> None:
    admin = coffer_server.create_user(admin=True)
    subject = coffer_server.create_user(name="Carol Audited")
    page = new_page()
    sign_in_through_the_page(page, coffer_server, admin)
    expect(page.get_by_role("link", name="Admin")).to_be_visible()

    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Admin · Users")).to_be_visible()
    assert_accessible(page)
    readme_screenshot(page, "admin-users")

    _open_user(page, coffer_server, subject)
    assert_accessible(page)
    page.get_by_label("Reason").last.fill("left the company")
    page.get_by_role("button", name="Deactivate user").click()
    expect(page.get_by_role("status")).to_contain_text("User deactivated")
    expect(page.get_by_test_id("user-state")).to_have_text("deactivated")

    page.get_by_role("link", name="Audit log of this user").click()
    row = page.get_by_role("row").filter(has_text="admin.user_deactivated")
    expect(row).to_contain_text("left the company")
    assert_accessible(page)

    page.get_by_role("link", name="Ledger check").click()
    page.get_by_role("button", name="Verify the ledger").click()
    expect(page.get_by_role("status")).to_have_text("Every invariant holds.")
    assert_accessible(page)

    page.get_by_role("link", name="Dead jobs").click()
    expect(page.get_by_role("heading", name="Admin · Dead jobs")).to_be_visible()
    assert_accessible(page)


def test_a_non_admin_is_refused(new_page: NewPage, coffer_server: CofferServer) -> None:
    user = coffer_server.create_user(name="Dan Ordinary")
    victim = coffer_server.create_user(name="Eve Target")
    page = new_page()
    sign_in_through_the_page(page, coffer_server, user)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)

    refused = page.goto(coffer_server.url("/app/admin/users"))
    assert refused is not None
    assert refused.status == 403
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page)

    # A well-formed post (this browser's own CSRF token) is refused as well: nothing frozen.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    posted = page.request.post(
        coffer_server.url(f"/app/admin/wallets/{victim.wallet_number}/freeze"),
        form={"csrf_token": token or "", "idempotency_key": "k1", "reason": "not allowed"},
        max_redirects=0,
    )
    assert posted.status == 403
    assert "status=active" in coffer_server.coffer(
        "admin", "users", "show", "--user", victim.user_id
    )


def _enable_two_factor(server: CofferServer, user: ServerUser) -> pyotp.TOTP:
    """Turn 2FA on through the API, as the user's authenticator app would be set up."""
    with httpx.Client(base_url=server.url("/api/v1"), timeout=30) as client:
        login = client.post("/auth/login", json={"email": user.email, "password": user.password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        setup = client.post("/auth/2fa/setup", headers=headers)
        assert setup.status_code == 200, setup.text
        authenticator = pyotp.TOTP(setup.json()["data"]["secret"])
        enabled = client.post(
            "/auth/2fa/enable", json={"code": authenticator.now()}, headers=headers
        )
        assert enabled.status_code == 200, enabled.text
    return authenticator


def test_an_admin_with_two_factor_acts_only_with_a_current_code(
    new_page: NewPage, coffer_server: CofferServer
) -> None:
    admin = coffer_server.create_user(admin=True)
    frank = coffer_server.create_user(name="Frank Guarded")
    page = new_page()
    sign_in_through_the_page(page, coffer_server, admin)
    authenticator = _enable_two_factor(coffer_server, admin)

    _open_user(page, coffer_server, frank)
    wallet = _wallet_section(page, frank)
    current = {authenticator.at(time.time() + offset) for offset in (-30, 0, 30)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in current)
    wallet.get_by_label("Amount (NGN)").fill("5.00")
    wallet.get_by_label("Reason").first.fill("test of the second factor")
    wallet.get_by_label("Your two-factor code").first.fill(wrong)
    wallet.get_by_role("button", name=f"Apply to wallet {frank.wallet_number}").click()
    expect(page.get_by_role("alert")).to_contain_text("two-factor code is not right")
    expect(page.get_by_test_id(f"admin-balance-{frank.wallet_number}")).to_have_text("0.00 NGN")
    assert_accessible(page)

    wallet = _wallet_section(page, frank)
    wallet.get_by_label("Amount (NGN)").fill("5.00")
    wallet.get_by_label("Reason").first.fill("test of the second factor")
    # The enabling code used the current step; the next step's code is already accepted.
    wallet.get_by_label("Your two-factor code").first.fill(authenticator.at(time.time() + 30))
    wallet.get_by_role("button", name=f"Apply to wallet {frank.wallet_number}").click()
    expect(page.get_by_role("status")).to_contain_text("Wallet credited")
    expect(page.get_by_test_id(f"admin-balance-{frank.wallet_number}")).to_have_text("5.00 NGN")


async def _dead_job(database_url: str) -> int:
    """A job that used up its attempts (one that succeeds once retried)."""
    database = Database(database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            job = OutboxJob(
                name=PURGE_JOB,
                payload={},
                status=OutboxStatus.DEAD,
                attempts=10,
                last_error="gave up in a test",
                run_at=utcnow(),
                created_at=utcnow(),
            )
            session.add(job)
            await session.flush()
            return job.id
    finally:
        await database.dispose()


def test_an_admin_retries_a_dead_job(new_page: NewPage, coffer_server: CofferServer) -> None:
    admin = coffer_server.create_user(admin=True)
    job_id = beside_the_browser(
        lambda: asyncio.run(_dead_job(coffer_server.env["COFFER_DATABASE_URL"]))
    )
    page = new_page()
    sign_in_through_the_page(page, coffer_server, admin)
    page.goto(coffer_server.url("/app/admin/jobs"))
    row = page.get_by_role("row").filter(has_text=f"Retry job {job_id}")
    expect(row).to_contain_text("gave up in a test")
    assert_accessible(page)
    row.get_by_role("button", name=f"Retry job {job_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Job {job_id} is queued again")
    expect(page.get_by_role("button", name=f"Retry job {job_id}")).to_have_count(0)
