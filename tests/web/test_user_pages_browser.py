"""The user pages in a real Chromium against a running `coffer serve` (embedded worker,
sandbox provider, SMTP mailbox): sign-up with the emailed code, a deposit through the sandbox
checkout, transfers (both balances; a double click moves money once), the 2FA-protected
withdrawal, API keys, a forged post refused, and axe-core on every page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pyotp
from playwright.sync_api import Page, expect

from tests.fixtures.browser import CofferServer, NewPage, ServerUser, readme_screenshot
from tests.fixtures.identity import PASSWORD, new_email

Axe = Callable[[Page], None]


def sign_in(page: Page, server: CofferServer, user: ServerUser) -> None:
    page.goto(server.url("/app/sign-in"))
    page.get_by_label("Email or phone number").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your wallets")).to_be_visible()


def balance(page: Page, server: CofferServer, currency: str = "NGN") -> str:
    page.goto(server.url("/app/"))
    return page.get_by_test_id(f"balance-{currency}").inner_text()


def send(page: Page, server: CofferServer, recipient: str, amount: str) -> None:
    """Fill the transfer form and reach its confirmation step."""
    page.goto(server.url("/app/transfer"))
    page.get_by_label("Recipient", exact=True).fill(recipient)
    page.get_by_label("Amount").fill(amount)
    page.get_by_role("button", name="Review").click()
    expect(page.get_by_role("heading", name="Confirm the transfer")).to_be_visible()


def test_sign_up_with_the_emailed_code(page: Page, coffer_server: CofferServer, axe: Axe) -> None:
    email = new_email()
    page.goto(coffer_server.url("/app/sign-up"))
    axe(page)
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Confirm your email")).to_be_visible()
    axe(page)
    page.get_by_label("Code from the email").fill(coffer_server.code_for(email))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Your account is verified")).to_be_visible()
    axe(page)
    sign_in(page, coffer_server, ServerUser(email, PASSWORD, "", ""))
    expect(page.get_by_test_id("balance-NGN")).to_have_text("0.00 NGN")


def test_a_deposit_through_the_sandbox_checkout_is_credited(
    page: Page, coffer_server: CofferServer, axe: Axe
) -> None:
    user = coffer_server.create_user(name="Dee Positor")
    sign_in(page, coffer_server, user)
    page.goto(coffer_server.url("/app/deposit"))
    axe(page)
    page.get_by_label("Amount").fill("250.00")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("heading", name="Sandbox checkout")).to_be_visible()
    page.get_by_role("button", name="Pay", exact=True).click()
    # Back on coffer: pending until the provider's (signed) webhook is applied, then credited.
    expect(page).to_have_url(re.compile(r"/app/deposit/[^/]+$"))
    expect(page.get_by_text("Credited: 250.00 NGN is in your wallet.")).to_be_visible(
        timeout=60_000
    )
    axe(page)
    assert balance(page, coffer_server) == "250.00 NGN"


def test_a_transfer_by_email_shows_the_recipient_and_moves_both_balances(
    new_page: NewPage, coffer_server: CofferServer, axe: Axe
) -> None:
    sender = coffer_server.create_user(name="Ada Lovelace")
    recipient = coffer_server.create_user(name="Bob Babbage")
    coffer_server.credit(sender.wallet_number, "5000.00")
    ada, bob = new_page(), new_page()
    sign_in(ada, coffer_server, sender)
    sign_in(bob, coffer_server, recipient)
    readme_screenshot(ada, "home")
    send(ada, coffer_server, recipient.email, "1250.75")
    expect(ada.get_by_text("Bob Babbage")).to_be_visible()
    axe(ada)
    readme_screenshot(ada, "transfer")
    ada.get_by_role("button", name="Send 1,250.75 NGN").click()
    expect(ada.get_by_role("heading", name="Transfer completed")).to_be_visible(timeout=60_000)
    axe(ada)
    assert balance(ada, coffer_server) == "3,749.25 NGN"
    assert balance(bob, coffer_server) == "1,250.75 NGN"
    expect(bob.get_by_text("Ada Lovelace")).to_be_visible()


def test_a_double_clicked_transfer_moves_money_once(
    new_page: NewPage, coffer_server: CofferServer
) -> None:
    sender = coffer_server.create_user(name="Dub Clicker")
    recipient = coffer_server.create_user(name="Rita Receiver")
    coffer_server.credit(sender.wallet_number, "100.00")
    # Without JavaScript nothing disables the button: both clicks reach the server, and the
    # idempotency key the confirmation form carries makes them one transfer.
    page = new_page(java_script_enabled=False)
    sign_in(page, coffer_server, sender)
    send(page, coffer_server, recipient.wallet_number, "30.00")
    page.get_by_role("button", name="Send 30.00 NGN").dblclick()
    expect(page.get_by_role("heading", name=re.compile("Transfer"))).to_be_visible()
    deadline = time.monotonic() + 60
    while balance(page, coffer_server) != "70.00 NGN" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert balance(page, coffer_server) == "70.00 NGN"
    other = new_page()
    sign_in(other, coffer_server, recipient)
    assert balance(other, coffer_server) == "30.00 NGN"
    other.goto(coffer_server.url("/app/history"))
    expect(other.locator("tbody tr")).to_have_count(1)


def test_the_withdrawal_asks_for_the_two_factor_code(
    page: Page, coffer_server: CofferServer, axe: Axe
) -> None:
    user = coffer_server.create_user(name="Wanda Withdraw")
    coffer_server.credit(user.wallet_number, "80.00")
    sign_in(page, coffer_server, user)
    page.goto(coffer_server.url("/app/security"))
    axe(page)
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    axe(page)
    totp = pyotp.TOTP(secret)
    # Each accepted code must be of a later time step than the last; the server takes the
    # steps either side of now, so three codes fit in one step's time.
    page.get_by_label("Code from the app").fill(totp.at(time.time() - 30))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
    axe(page)
    assert page.locator("#recovery-codes li").count() == 10

    page.goto(coffer_server.url("/app/bank-accounts"))
    axe(page)
    page.get_by_label("Bank", exact=True).select_option(label="Sandbox Bank")
    page.get_by_label("Account number").fill("0123456789")
    page.get_by_label("Two-factor code").fill(totp.now())
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_text("Sandbox Holder 6789")).to_be_visible()

    page.goto(coffer_server.url("/app/withdraw"))
    axe(page)
    page.get_by_label("Amount").fill("25.00")
    page.get_by_role("button", name="Withdraw").click()
    # The browser's own check first: the code field is required.
    expect(page.get_by_role("heading", name="Withdraw")).to_be_visible()
    page.get_by_label("Two-factor code").fill("000000")
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_role("alert")).to_contain_text("two-factor code is not right")
    assert balance(page, coffer_server) == "80.00 NGN"

    page.goto(coffer_server.url("/app/withdraw"))
    page.get_by_label("Amount").fill("25.00")
    page.get_by_label("Two-factor code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_role("heading", name=re.compile("Withdrawal"))).to_be_visible()
    axe(page)
    assert balance(page, coffer_server) == "55.00 NGN"


def test_an_api_key_is_shown_once_and_revoked(
    page: Page, coffer_server: CofferServer, axe: Axe
) -> None:
    user = coffer_server.create_user(name="Kay Holder")
    sign_in(page, coffer_server, user)
    page.goto(coffer_server.url("/app/api-keys"))
    axe(page)
    page.get_by_label("Name", exact=True).fill("payouts")
    page.get_by_label("Transfer").check()
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-api-key").inner_text().strip()
    assert key.startswith("sk_test_")
    expect(page.get_by_role("button", name="Copy the key")).to_be_visible()
    axe(page)
    api = coffer_server.url("/api/v1/wallet/balance")
    assert httpx.get(api, headers={"x-api-key": key}, timeout=30).status_code == 200
    page.get_by_role("button", name="Revoke payouts").click()
    expect(page.get_by_test_id("key-status-payouts")).to_have_text("revoked")
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    assert httpx.get(api, headers={"x-api-key": key}, timeout=30).status_code == 401


def test_a_forged_form_post_is_refused(new_page: NewPage, coffer_server: CofferServer) -> None:
    victim = coffer_server.create_user(name="Vic Tim")
    thief = coffer_server.create_user(name="Thea Thief")
    coffer_server.credit(victim.wallet_number, "40.00")
    page = new_page()
    sign_in(page, coffer_server, victim)
    # A form the site never rendered (no CSRF token), posted from the victim's browser.
    page.evaluate(
        """([action, wallet]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            for (const [name, value] of Object.entries({recipient: wallet, amount: "40.00",
                    idempotency_key: "forged-1"})) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""",
        [coffer_server.url("/app/transfer/confirm"), thief.wallet_number],
    )
    expect(page.get_by_text("could not be verified as coming from this site")).to_be_visible()
    assert balance(page, coffer_server) == "40.00 NGN"


def test_axe_finds_nothing_serious_on_any_user_page(
    new_page: NewPage, coffer_server: CofferServer, axe: Axe
) -> None:
    visitor = new_page()
    for path in ("/app/sign-in", "/app/sign-up", "/app/password-reset"):
        visitor.goto(coffer_server.url(path))
        axe(visitor)
    user = coffer_server.create_user(name="Al Ly")
    coffer_server.credit(user.wallet_number, "10.00")
    phone = new_page(viewport={"width": 390, "height": 844})
    sign_in(phone, coffer_server, user)
    for path in (
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
    ):
        phone.goto(coffer_server.url(path))
        axe(phone)
