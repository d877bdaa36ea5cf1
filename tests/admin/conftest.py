"""Admin test helpers: admins and users signed in through the real login, with wallets."""

from __future__ import annotations

from dataclasses import dataclass

from coffer.identity.service import create_user
from coffer.models import Role
from tests.fixtures.factories import fund
from tests.fixtures.identity import PASSWORD, Api, bearer, new_email


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    user_id: str
    wallet_number: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


async def person(api: Api, *, role: Role = Role.USER, fund_minor: int = 0) -> Person:
    """A verified user (or admin) with a primary NGN wallet, signed in with their password."""
    address = new_email()
    async with api.app.state.database.transaction() as session:
        created = await create_user(
            session,
            email=address,
            password=PASSWORD,
            currency="NGN",
            first_name="Ada",
            last_name="Obi",
            role=role,
            settings=api.settings,
        )
        if fund_minor:
            await fund(session, created.primary_wallet, fund_minor)
    data = await api.login(address)
    return Person(
        address, str(created.user.id), created.primary_wallet.number, data["access_token"]
    )
