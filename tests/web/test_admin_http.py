"""The admin pages over plain HTTP: each renders for an admin and is a 403 page for anyone
else; a form refused for its 2FA code or its reason changes nothing and says why."""

from __future__ import annotations

import pytest

from coffer.identity.service import create_user
from coffer.models import Role
from tests.fixtures.identity import PASSWORD, new_email
from tests.web.conftest import Browserless
from tests.web.forms import hidden_fields

ADMIN_PAGES = [
    "/app/admin/users",
    "/app/admin/users?q=example.com",
    "/app/admin/audit",
    "/app/admin/jobs",
    "/app/admin/ledger",
    "/app/admin/ledger?run=true",
]


async def _person(web: Browserless, role: Role) -> tuple[str, str]:
    """A user (or admin) made through the identity service: their email and user id."""
    address = new_email()
    async with web.api.app.state.database.transaction() as session:
        created = await create_user(
            session,
            email=address,
            password=PASSWORD,
            currency="NGN",
            first_name="Ada",
            last_name="Obi",
            role=role,
            settings=web.api.settings,
        )
    return address, str(created.user.id)


async def test_every_admin_page_renders_for_an_admin(web: Browserless) -> None:
    admin, _ = await _person(web, Role.ADMIN)
    _, subject_id = await _person(web, Role.USER)
    await web.sign_in(admin)
    for path in [*ADMIN_PAGES, f"/app/admin/users/{subject_id}"]:
        page = await web.client.get(path)
        assert page.status_code == 200, (path, page.text[-2000:])
        assert 'aria-label="Admin"' in page.text, path
    assert "Every invariant holds." in (await web.client.get("/app/admin/ledger?run=true")).text
    home = await web.client.get("/app/admin")
    assert (home.status_code, home.headers["location"]) == (303, "/app/admin/users")


async def test_a_user_gets_a_403_page_on_every_admin_page(web: Browserless) -> None:
    user, subject_id = await _person(web, Role.USER)
    await web.sign_in(user)
    for path in [*ADMIN_PAGES, f"/app/admin/users/{subject_id}"]:
        page = await web.client.get(path)
        assert page.status_code == 403, path
        assert "for administrators only" in page.text, path


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"amount": "10.00", "reason": "ok", "direction": "credit"}, 422, "Check reason"),
        ({"amount": "0", "reason": "refund", "direction": "credit"}, 422, "greater than zero"),
        ({"amount": "10.00", "reason": "refund", "direction": "sideways"}, 422, "Credit or Debit"),
    ],
)
async def test_a_refused_adjustment_changes_nothing_and_says_why(
    web: Browserless, fields: dict[str, str], status: int, says: str
) -> None:
    admin, _ = await _person(web, Role.ADMIN)
    _, subject_id = await _person(web, Role.USER)
    await web.sign_in(admin)
    page = await web.client.get(f"/app/admin/users/{subject_id}")
    action = page.text.split('action="/app/admin/wallets/', 1)[1].split('"', 1)[0]
    answer = await web.client.post(
        f"/app/admin/wallets/{action}", data=hidden_fields(page) | fields
    )
    assert answer.status_code == status, answer.text[-2000:]
    assert says in answer.text
    assert "0.00 NGN" in answer.text
