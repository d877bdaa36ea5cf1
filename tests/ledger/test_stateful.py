"""Random sequences of wallet operations against an in-memory model, on SQLite and PostgreSQL.

The machine opens wallets, credits and debits them as an operator, and moves money between them
with ledger transfers (valid or not). After every step each wallet's balance must equal the
model's, the adjustments account must have moved by exactly the net of the credits and debits,
and `verify_ledger` must find nothing wrong.

The database is shared with other tests and kept across examples, so the model only knows the
wallets opened in the current example.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from coffer.db import Database
from coffer.kit.money import Money
from coffer.ledger import service as ledger
from coffer.ledger.errors import EntryReferenceConflict, InsufficientFunds, InvalidEntry
from coffer.ledger.postings import EntryKind
from coffer.ledger.verify import InvariantCheck, verify_ledger
from coffer.wallets import service as wallet_service
from coffer.wallets.service import WalletAlreadyExists
from tests.fixtures.factories import make_user

T = TypeVar("T")

CURRENCIES = ("NGN", "JPY", "KWD")
amounts = st.integers(min_value=1, max_value=5_000)
# Mostly naira, so that most pairs of wallets can pay each other.
currencies = st.one_of(st.just("NGN"), st.sampled_from(CURRENCIES))
shares = st.integers(min_value=1, max_value=125)
"""Percent of the payer's balance to move; above 100 asks for more than there is."""


def amount_for(balance: int, share: int) -> int:
    if share > 100:
        return balance + share - 100
    return max(1, balance * share // 100)


@dataclass
class ModelWallet:
    number: str
    user_id: uuid.UUID
    account_id: int
    currency: str
    balance: int = 0


@dataclass(frozen=True)
class DoneTransfer:
    reference: str
    debit: ModelWallet
    credit: ModelWallet
    amount: int


class LedgerMachine(RuleBasedStateMachine):
    database_url: str = ""

    wallets = Bundle("wallets")
    transfers = Bundle("transfers")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.database = self.run(self._open_database())
        self.model: list[ModelWallet] = []
        # The adjustments accounts are shared with the rest of the suite: model their movement.
        self.adjustments = self.run(self._adjustments_accounts())
        self.adjustments_opening = self.run(self._adjustments_balances())
        self.adjustments_net: dict[str, int] = dict.fromkeys(CURRENCIES, 0)

    async def _open_database(self) -> Database:
        # Created inside the machine's loop, so its connections belong to that loop.
        return Database(self.database_url, pool_size=2)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.database.dispose())
        finally:
            self.loop.close()

    async def _adjustments_accounts(self) -> dict[str, int]:
        async with self.database.transaction() as session:
            return {
                currency: await ledger.system_account(
                    session, wallet_service.ADJUSTMENTS_PURPOSE, currency
                )
                for currency in CURRENCIES
            }

    async def _adjustments_balances(self) -> dict[str, int]:
        async with self.database.transaction() as session:
            return {
                currency: await ledger.balance_of(session, account)
                for currency, account in self.adjustments.items()
            }

    async def _entries_with_reference(self, reference: str) -> int:
        async with self.database.transaction() as session:
            sql = "SELECT COUNT(*) FROM ledger_entries WHERE reference = :ref"
            return int((await session.execute(text(sql), {"ref": reference})).scalar_one())

    # --- opening wallets -------------------------------------------------------------------

    @rule(target=wallets, currency=currencies)
    def open_wallet_for_new_user(self, currency: str) -> ModelWallet:
        async def step() -> ModelWallet:
            async with self.database.transaction() as session:
                created = await make_user(session, currency=currency)
                wallet = created.primary_wallet
                return ModelWallet(
                    wallet.number, created.user.id, wallet.ledger_account_id, currency
                )

        wallet = self.run(step())
        self.model.append(wallet)
        return wallet

    @rule(target=wallets, owner=wallets, currency=currencies)
    def open_another_wallet(self, owner: ModelWallet, currency: str) -> Any:
        held = {w.currency for w in self.model if w.user_id == owner.user_id}

        async def step() -> ModelWallet:
            async with self.database.transaction() as session:
                wallet = await wallet_service.open_wallet(session, owner.user_id, currency)
                return ModelWallet(wallet.number, owner.user_id, wallet.ledger_account_id, currency)

        if currency in held:
            with pytest.raises(WalletAlreadyExists):
                self.run(step())
            return multiple()
        wallet = self.run(step())
        self.model.append(wallet)
        return wallet

    @initialize(target=wallets, funds=st.tuples(amounts, amounts))
    def open_two_funded_wallets(self, funds: tuple[int, int]) -> Any:
        # Two wallets that can pay each other from the first step on.
        opened = [self.open_wallet_for_new_user("NGN") for _ in funds]
        for wallet, amount in zip(opened, funds, strict=True):
            self.credit(wallet, amount)
        return multiple(*opened)

    # --- operator adjustments --------------------------------------------------------------

    async def _adjust(
        self, target: ModelWallet, amount: int, *, credit: bool, reference: str | None = None
    ) -> None:
        async with self.database.transaction() as session:
            wallet = await wallet_service.find_wallet(session, target.number)
            await wallet_service.adjust(
                session,
                wallet,
                Money.of(amount, target.currency),
                reason="stateful test",
                credit=credit,
                actor="hypothesis",
                reference=reference,
            )

    @rule(wallet=wallets, amount=amounts)
    def credit(self, wallet: ModelWallet, amount: int) -> None:
        self.run(self._adjust(wallet, amount, credit=True))
        wallet.balance += amount
        self.adjustments_net[wallet.currency] -= amount

    @rule(wallet=wallets, share=shares)
    def debit(self, wallet: ModelWallet, share: int) -> None:
        amount = amount_for(wallet.balance, share)
        if amount > wallet.balance:
            reference = f"stateful-{uuid.uuid4().hex}"
            with pytest.raises(InsufficientFunds) as raised:
                self.run(self._adjust(wallet, amount, credit=False, reference=reference))
            assert raised.value.account_id == wallet.account_id
            self._assert_nothing_posted(reference)
            return
        self.run(self._adjust(wallet, amount, credit=False))
        wallet.balance -= amount
        self.adjustments_net[wallet.currency] += amount

    # --- transfers -------------------------------------------------------------------------

    async def _transfer(
        self, reference: str, debit: ModelWallet, credit: ModelWallet, amount: int
    ) -> ledger.PostedEntry:
        async with self.database.transaction() as session:
            return await ledger.post_entry(
                session,
                EntryKind.TRANSFER,
                reference,
                ledger.movement(debit.account_id, credit.account_id, amount),
                {"from": debit.number, "to": credit.number},
            )

    def _assert_nothing_posted(self, reference: str) -> None:
        assert self.run(self._entries_with_reference(reference)) == 0

    @rule(target=transfers, debit=wallets, data=st.data(), share=shares)
    def transfer(self, debit: ModelWallet, data: st.DataObject, share: int) -> Any:
        payees = [w for w in self.model if w.currency == debit.currency and w is not debit]
        if not payees:
            return multiple()
        credit = data.draw(st.sampled_from(payees), label="credit")
        amount = amount_for(debit.balance, share)
        reference = f"stateful-{uuid.uuid4().hex}"
        if amount > debit.balance:
            with pytest.raises(InsufficientFunds) as raised:
                self.run(self._transfer(reference, debit, credit, amount))
            assert raised.value.account_id == debit.account_id
            self._assert_nothing_posted(reference)
            return multiple()
        posted = self.run(self._transfer(reference, debit, credit, amount))
        debit.balance -= amount
        credit.balance += amount
        assert not posted.replayed
        assert posted.balances_after == {
            debit.account_id: debit.balance,
            credit.account_id: credit.balance,
        }
        return DoneTransfer(reference, debit, credit, amount)

    @rule(debit=wallets, credit=wallets, amount=amounts)
    def transfer_between_unrelated_wallets(
        self, debit: ModelWallet, credit: ModelWallet, amount: int
    ) -> None:
        # To itself, or across currencies: the entry cannot balance, whatever the funds.
        if debit is not credit and debit.currency == credit.currency:
            return
        reference = f"stateful-{uuid.uuid4().hex}"
        with pytest.raises(InvalidEntry):
            self.run(self._transfer(reference, debit, credit, amount))
        self._assert_nothing_posted(reference)

    @rule(done=transfers)
    def replay_transfer(self, done: DoneTransfer) -> None:
        # A retried request: nothing moves, however the balances have changed since.
        posted = self.run(self._transfer(done.reference, done.debit, done.credit, done.amount))
        assert posted.replayed
        assert self.run(self._entries_with_reference(done.reference)) == 1

    @rule(done=transfers, extra=amounts)
    def reuse_reference_for_another_amount(self, done: DoneTransfer, extra: int) -> None:
        with pytest.raises(EntryReferenceConflict):
            self.run(self._transfer(done.reference, done.debit, done.credit, done.amount + extra))

    # --- checks ----------------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        async def observe() -> tuple[list[int], dict[str, int], list[InvariantCheck]]:
            async with self.database.transaction() as session:
                balances = [
                    await ledger.balance_of(session, wallet.account_id) for wallet in self.model
                ]
                adjustments = {
                    currency: await ledger.balance_of(session, account)
                    for currency, account in self.adjustments.items()
                }
                return balances, adjustments, await verify_ledger(session)

        balances, adjustments, checks = self.run(observe())
        assert balances == [wallet.balance for wallet in self.model]
        moved = {c: adjustments[c] - self.adjustments_opening[c] for c in CURRENCIES}
        assert moved == self.adjustments_net
        failures = [check for check in checks if not check.ok]
        assert not failures, failures


def test_random_wallet_operations_keep_the_ledger_consistent(database_url: str) -> None:
    machine = type("BoundLedgerMachine", (LedgerMachine,), {"database_url": database_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
