"""The hub's tail of the events table: what it reads, and who is offered what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from coffer.db import Database
from coffer.notifications.events import newest_event_id
from coffer.notifications.hub import CommitNudger, EventHub, Subscriber
from coffer.settings import Settings
from tests.fixtures.factories import fund, make_user


async def _newest(database: Database) -> int:
    async with database.read() as session:
        return await newest_event_id(session)


async def test_with_no_socket_the_cursor_moves_to_the_newest_event_and_a_socket_gets_only_its_own(
    database: Database,
) -> None:
    hub = EventHub(database, Settings(database_url="sqlite://"), CommitNudger(None))
    hub.cursor = await _newest(database)
    async with database.transaction() as session:
        ada = await make_user(session)
        bob = await make_user(session)
        await fund(session, ada.primary_wallet, 1_000)
        await fund(session, bob.primary_wallet, 1_000)
    unwatched = await _newest(database)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        await hub._catch_up()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    after_unwatched = hub.cursor
    socket = Subscriber(ada.user.id, None, None, queue_limit=100)
    hub.subscribe(socket)
    async with database.transaction() as session:
        await fund(session, bob.primary_wallet, 500)
        await fund(session, ada.primary_wallet, 500)
        await fund(session, bob.primary_wallet, 500)
    await hub._catch_up()

    assert after_unwatched == unwatched
    [read] = [s for s in statements if "events" in s]
    assert "max(" in read.lower(), "rows were read for no socket"
    assert hub.cursor == await _newest(database)
    offered = [event_id for event_id, _ in socket.pending]
    assert len(offered) == 1, "ada's socket was offered someone else's events, or none"
    assert unwatched < offered[0] < hub.cursor
