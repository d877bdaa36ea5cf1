"""The transfer intake batcher: concurrent requests share one transaction, each keeps its answer.

The app here gathers for a long window but flushes as soon as BATCH requests wait, so sending
exactly BATCH requests at once makes exactly one batch, without any sleep. Which transactions
stored transfers is watched on the engine itself: a connection that ran an INSERT INTO
transfers and was returned to the pool without a rollback committed them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text

from coffer.db import Database
from coffer.models import Transfer
from coffer.settings import Settings
from coffer.transfers.batcher import IntakeClosed, TransferBatcher
from coffer.transfers.service import AcceptedTransfer, RecipientKind, TransferRequest
from tests.fixtures.factories import assert_ledger_sound, fund, make_user
from tests.fixtures.http import API, Caller

SignIn = Callable[..., Awaitable[Caller]]
BATCH = 4
LONG_WINDOW_MS = 30_000
"""Longer than any test: a batch only goes when BATCH requests wait (or at shutdown)."""


@pytest.fixture
def app_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return Settings(
        database_url=database_url,
        worker_mode="external",
        database_pool_size=5,
        **{
            "transfer_accept_window_ms": LONG_WINDOW_MS,
            "transfer_accept_max_batch": BATCH,
            **overrides,
        },
    )


@dataclass
class CommitWatch:
    """Each committed transaction that inserted transfers, with how many of the watched
    requests had been answered when it committed."""

    tasks: list[asyncio.Task[httpx.Response]] = field(default_factory=list)
    answered_at_commit: list[int] = field(default_factory=list)

    async def send(self, *calls: Coroutine[Any, Any, httpx.Response]) -> list[httpx.Response]:
        self.tasks = [asyncio.create_task(call) for call in calls]
        return list(await asyncio.gather(*self.tasks))


@pytest.fixture
def commits(app_database: Database) -> Iterator[CommitWatch]:
    watch = CommitWatch()
    engine = app_database.engine.sync_engine
    mark = "inserted_transfers"

    def on_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TRANSFERS"):
            conn.info[mark] = True

    def on_rollback(conn: Any) -> None:
        conn.info.pop(mark, None)

    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # Returned to the pool after its transaction ended: committed, unless rolled back.
        if record.info.pop(mark, False):
            watch.answered_at_commit.append(sum(task.done() for task in watch.tasks))

    listeners = [
        (engine, "after_cursor_execute", on_execute),
        (engine, "rollback", on_rollback),
        (engine.pool, "checkin", on_checkin),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    yield watch
    for target, name, listener in listeners:
        event.remove(target, name, listener)


def transfer(
    client: httpx.AsyncClient,
    caller: Caller,
    to: Caller,
    amount: str = "1.00",
    *,
    from_wallet: str | None = None,
    **headers: str,
) -> Coroutine[Any, Any, httpx.Response]:
    path = f"/wallets/{from_wallet}/transfer" if from_wallet else "/wallet/transfer"
    return client.post(
        f"{API}{path}",
        json={"wallet_number": to.wallet_number, "amount": amount},
        headers={**caller.headers, **headers},
    )


async def created_at_of(database: Database, references: list[str]) -> set[Any]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(Transfer.created_at).where(Transfer.reference.in_(references))
        )
        return set(rows.scalars())


async def test_concurrent_transfers_are_stored_in_one_transaction_answered_after_commit(
    client: httpx.AsyncClient, sign_in: SignIn, commits: CommitWatch, app_database: Database
) -> None:
    senders = [await sign_in(fund_minor=10_000) for _ in range(BATCH)]
    recipient = await sign_in()

    responses = await commits.send(
        transfer(client, senders[0], recipient, "1.00"),
        transfer(client, senders[1], recipient, "2.00"),
        transfer(client, senders[2], recipient, "3.00", from_wallet=senders[2].wallet_number),
        transfer(client, senders[3], recipient, "4.00"),
    )

    assert [r.status_code for r in responses] == [202] * BATCH, [r.text for r in responses]
    assert [r.json()["data"]["amount"] for r in responses] == ["1.00", "2.00", "3.00", "4.00"]
    assert commits.answered_at_commit == [0]
    references = [r.json()["data"]["reference"] for r in responses]
    assert len(set(references)) == BATCH
    assert len(await created_at_of(app_database, references)) == 1


@pytest.mark.parametrize("app_settings", [{"transfer_accept_window_ms": 0}], indirect=True)
async def test_without_a_window_each_transfer_has_its_own_transaction(
    client: httpx.AsyncClient, sign_in: SignIn, commits: CommitWatch, app: Any
) -> None:
    assert app.state.transfer_batcher is None
    senders = [await sign_in(fund_minor=10_000) for _ in range(BATCH)]
    recipient = await sign_in()

    responses = await commits.send(*(transfer(client, s, recipient) for s in senders))

    assert [r.status_code for r in responses] == [202] * BATCH
    assert len(commits.answered_at_commit) == BATCH


async def test_a_bad_request_among_good_ones_gets_its_own_error(
    client: httpx.AsyncClient, sign_in: SignIn, commits: CommitWatch, app_database: Database
) -> None:
    rich = [await sign_in(fund_minor=10_000) for _ in range(3)]
    poor = await sign_in(fund_minor=100)
    recipient = await sign_in()

    good_one, broke, good_two, good_three = await commits.send(
        transfer(client, rich[0], recipient),
        transfer(client, poor, recipient, "5.00"),
        transfer(client, rich[1], recipient),
        transfer(client, rich[2], recipient),
    )

    assert broke.status_code == 400
    assert broke.json()["error"]["code"] == "insufficient_funds"
    assert [r.status_code for r in (good_one, good_two, good_three)] == [202] * 3
    assert commits.answered_at_commit == [0]
    async with app_database.transaction() as session:
        await assert_ledger_sound(session)


async def test_one_idempotency_key_in_one_batch_makes_one_transfer_then_replays(
    client: httpx.AsyncClient, sign_in: SignIn, commits: CommitWatch, app_database: Database
) -> None:
    sender = await sign_in(fund_minor=10_000)
    others = [await sign_in(fund_minor=10_000) for _ in range(BATCH)]
    recipient = await sign_in()
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}

    first, repeat, other_body, neighbour = await commits.send(
        transfer(client, sender, recipient, "7.00", **key),
        transfer(client, sender, recipient, "7.00", **key),
        transfer(client, sender, recipient, "8.00", **key),
        transfer(client, others[0], recipient),
    )

    assert neighbour.status_code == 202
    # Requests sent together reach the batch in the event loop's order: whichever same-key
    # request comes first is the original; the same body replays it, another body is refused.
    same_key = [first, repeat, other_body]
    [original] = [
        r for r in same_key if r.status_code == 202 and "Idempotent-Replayed" not in r.headers
    ]
    original_is_seven = original is not other_body
    twins = [first, repeat] if original_is_seven else [other_body]
    strangers = [other_body] if original_is_seven else [first, repeat]
    for twin in (r for r in twins if r is not original):
        assert twin.status_code == 202
        assert twin.headers["Idempotent-Replayed"] == "true"
        assert twin.json()["data"] == original.json()["data"]
    for stranger in strangers:
        assert stranger.status_code == 422
        assert stranger.json()["error"]["code"] == "idempotency_key_reused"

    # A later batch replays the stored transfer.
    later, *rest = await commits.send(
        transfer(client, sender, recipient, "7.00" if original_is_seven else "8.00", **key),
        *(transfer(client, other, recipient) for other in others[1:]),
    )
    assert later.status_code == 202
    assert later.headers["Idempotent-Replayed"] == "true"
    assert later.json()["data"] == original.json()["data"]
    assert [r.status_code for r in rest] == [202] * (BATCH - 1)
    async with app_database.transaction() as session:
        stored = await session.scalar(
            select(func.count()).where(Transfer.sender_user_id == sender.user_id)
        )
    assert stored == 1


@pytest.fixture
async def poison_trigger(app_database: Database) -> Any:
    """The database refuses any transfer whose narration is `poison` (a whole INSERT fails)."""
    if app_database.is_sqlite:
        create = [
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON transfers "
            "WHEN NEW.narration = 'poison' BEGIN SELECT RAISE(ABORT, 'poison transfer'); END"
        ]
        drop = ["DROP TRIGGER refuse_poison"]
    else:
        create = [
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
            "IF NEW.narration = 'poison' THEN RAISE EXCEPTION 'poison transfer'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON transfers "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ]
        drop = ["DROP TRIGGER refuse_poison ON transfers", "DROP FUNCTION refuse_poison()"]
    async with app_database.transaction() as session:
        for statement in create:
            await session.execute(text(statement))
    yield
    async with app_database.transaction() as session:
        for statement in drop:
            await session.execute(text(statement))


@pytest.mark.usefixtures("poison_trigger")
async def test_a_batch_whose_transaction_fails_is_stored_request_by_request(
    client: httpx.AsyncClient, sign_in: SignIn, commits: CommitWatch, app_database: Database
) -> None:
    senders = [await sign_in(fund_minor=10_000) for _ in range(BATCH)]
    recipient = await sign_in()

    def send(caller: Caller, narration: str) -> Coroutine[Any, Any, httpx.Response]:
        body = {"wallet_number": recipient.wallet_number, "amount": "1.00", "narration": narration}
        return client.post(f"{API}/wallet/transfer", json=body, headers=caller.headers)

    responses = await commits.send(
        send(senders[0], "fine"),
        send(senders[1], "poison"),
        send(senders[2], "fine"),
        send(senders[3], "fine"),
    )

    assert [r.status_code for r in responses] == [202, 500, 202, 202]
    assert responses[1].json()["error"]["code"] == "internal_error"
    # The batch rolled back; each good request then committed on its own.
    assert len(commits.answered_at_commit) == BATCH - 1
    async with app_database.transaction() as session:
        stored = await session.execute(
            select(Transfer.reference).where(
                Transfer.sender_user_id.in_([s.user_id for s in senders])
            )
        )
        assert set(stored.scalars()) == {
            responses[i].json()["data"]["reference"] for i in (0, 2, 3)
        }


async def test_shutdown_stores_what_is_waiting(database: Database, database_url: str) -> None:
    async with database.transaction() as session:
        sender = await make_user(session)
        await fund(session, sender.primary_wallet, 10_000)
        recipient = await make_user(session)
    settings = Settings(
        database_url=database_url,
        transfer_accept_window_ms=LONG_WINDOW_MS,
        transfer_accept_max_batch=100,
    )
    batcher = TransferBatcher(database, settings)
    request = TransferRequest(
        sender.user.id, RecipientKind.WALLET_NUMBER, recipient.primary_wallet.number, "1.00"
    )
    waiting = [batcher.submit(request) for _ in range(3)]
    assert not any(future.done() for future in waiting)

    await batcher.close()

    outcomes = [future.result() for future in waiting]
    assert all(isinstance(outcome, AcceptedTransfer) for outcome in outcomes)
    references = [o.reference for o in outcomes if isinstance(o, AcceptedTransfer)]
    assert len(await created_at_of(database, references)) == 1
    with pytest.raises(IntakeClosed):
        batcher.submit(request)
