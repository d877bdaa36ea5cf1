"""The hash-chained audit log: `coffer audit verify` passes on an intact chain and fails when
a row is edited or removed with SQL; concurrent appends never fork the chain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from coffer.audit.service import Action, record, verify_chain
from coffer.db import Database
from coffer.models import AuditEvent
from tests.test_cli import coffer, execute


async def _append(url: str, count: int) -> None:
    database = Database(url, pool_size=1)
    try:
        for index in range(count):
            async with database.transaction() as session:
                await record(
                    session,
                    Action.WALLET_FROZEN,
                    actor="cli:test",
                    subject_user_id=uuid.uuid4(),
                    reason=f"reason {index}",
                    details={"wallet": "1234567890123", "n": index},
                )
    finally:
        await database.dispose()


async def _verify(url: str) -> tuple[bool, int, int | None]:
    database = Database(url, pool_size=1)
    try:
        async with database.transaction() as session:
            report = await verify_chain(session)
        return report.ok, report.events, report.broken_at
    finally:
        await database.dispose()


def test_audit_verify_passes_then_fails_after_a_row_is_edited_or_removed(
    backend: str, fresh_database_url: Callable[..., str], tmp_path: Path
) -> None:
    url = fresh_database_url()
    asyncio.run(_append(url, 5))
    intact = coffer(url, tmp_path, "audit", "verify")
    assert intact.returncode == 0, intact.stderr
    assert "5 events, chain intact" in intact.stdout

    execute(url, "UPDATE audit_events SET reason = 'nothing to see' WHERE id = 3")
    edited = coffer(url, tmp_path, "audit", "verify")
    assert edited.returncode == 1
    assert "event 3 was altered" in edited.stdout

    execute(url, "UPDATE audit_events SET reason = 'reason 2' WHERE id = 3")
    assert asyncio.run(_verify(url)) == (True, 5, None)
    execute(url, "DELETE FROM audit_events WHERE id = 2")
    assert asyncio.run(_verify(url)) == (False, 2, 3)

    url = fresh_database_url()
    asyncio.run(_append(url, 3))
    execute(url, "DELETE FROM audit_events WHERE id = 3")
    removed_newest = coffer(url, tmp_path, "audit", "verify")
    assert removed_newest.returncode == 1
    assert "the newest events were removed" in removed_newest.stdout


async def test_concurrent_appends_never_fork_the_chain(
    backend: str,
    fresh_database_url: Callable[..., str],
) -> None:
    url = fresh_database_url()
    await asyncio.gather(*(_append(url, 10) for _ in range(6)))
    assert await _verify(url) == (True, 60, None)
    database = Database(url, pool_size=1)
    try:
        async with database.transaction() as session:
            links = (await session.execute(select(AuditEvent.previous_hash))).scalars().all()
    finally:
        await database.dispose()
    assert len(set(links)) == 60
