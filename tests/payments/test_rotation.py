"""`coffer keys rotate-encryption`: every encrypted column re-sealed under the current key, on a
database of its own (rotation touches every row)."""

from __future__ import annotations

from collections.abc import Callable

import pyotp
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from coffer.db import Database
from coffer.identity import totp
from coffer.kit.clock import utcnow
from coffer.kit.crypto import UnsealError, seal, unseal
from coffer.models import PayoutDestination, SavedCard, TotpCredential
from coffer.payments import repository
from coffer.payments.destinations import account_context, add_destination
from coffer.payments.providers.registry import ProviderRegistry
from coffer.payments.rotation import reseal_batch
from coffer.payments.settlement import card_context
from coffer.settings import Settings
from tests.fixtures.factories import make_user


@pytest.mark.usefixtures("backend")
async def test_rotation_reseals_accounts_cards_and_totp_secrets(
    fresh_database_url: Callable[..., str],
) -> None:
    url = fresh_database_url()
    settings = Settings(database_url=url)
    database = Database(url, pool_size=2)
    try:
        async with database.transaction() as session:
            user = (await make_user(session)).user
            setup = await totp.begin_setup(session, settings, user.id, user.email)
            await repository.upsert_card(
                session,
                {
                    "user_id": user.id,
                    "provider": "sandbox",
                    "authorization_sealed": seal(
                        settings, "AUTH_secret", context=card_context(user.id, "sandbox", "sig")
                    ),
                    "encryption_key_id": "default",
                    "last4": "4242",
                    "brand": "visa",
                    "exp_month": "12",
                    "exp_year": "2030",
                    "signature": "sig",
                    "created_at": utcnow(),
                },
            )
        registry = ProviderRegistry(settings, database)
        await add_destination(
            database,
            settings,
            registry,
            user.id,
            bank_code="001",
            account_number="5566778899",
            currency=None,
        )
        rotated = settings.model_copy(
            update={"data_encryption_keys": {"2027-01": SecretStr("a-new-long-random-key-value")}}
        )

        async with database.transaction() as session:
            changed = await totp.reseal_secrets(session, rotated)
            while batch := await reseal_batch(session, rotated):
                changed += batch
        async with database.transaction() as session:
            again = await totp.reseal_secrets(session, rotated) + await reseal_batch(
                session, rotated
            )
            destination = (await session.execute(select(PayoutDestination))).scalar_one()
            card = (await session.execute(select(SavedCard))).scalar_one()
            credential = (await session.execute(select(TotpCredential))).scalar_one()
            await totp.enable(session, rotated, user.id, pyotp.TOTP(setup.secret).now())
    finally:
        await database.dispose()

    assert (changed, again) == (3, 0)
    assert destination.encryption_key_id == card.encryption_key_id == "2027-01"
    context = account_context(user.id, "sandbox", "001")
    assert unseal(rotated, destination.account_number_sealed, context=context) == "5566778899"
    assert credential.secret_sealed.startswith("2027-01.")
    # Sealed under the new key: the old configuration alone no longer opens it.
    with pytest.raises(UnsealError):
        unseal(settings, destination.account_number_sealed, context=context)
