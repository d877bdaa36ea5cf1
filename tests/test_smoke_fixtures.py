from coffer.db import Database
from tests.fixtures.factories import assert_ledger_sound, fund, make_user


async def test_a_funded_wallet_keeps_the_ledger_sound(database: Database) -> None:
    async with database.transaction() as session:
        created = await make_user(session)
        await fund(session, created.primary_wallet, 1000)
    async with database.transaction() as session:
        await assert_ledger_sound(session)
