"""Alembic migrations on both backends: up, down and up again, and in step with the models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from coffer.db import Database
from coffer.ledger.verify import APPEND_ONLY_TRIGGERS_POSTGRES, APPEND_ONLY_TRIGGERS_SQLITE
from coffer.migrate import alembic_config, head_revision, upgrade_to_head
from coffer.models import Base
from tests.fixtures.factories import fund, make_user

MODEL_TABLES = frozenset(Base.metadata.tables)


def _inspect(url: str, look: Callable[[Connection], Any]) -> Any:
    """Run a synchronous inspection on a connection (Alembic needs sync tests: it runs its own
    event loop)."""

    async def run() -> Any:
        database = Database(url, pool_size=1)
        try:
            async with database.engine.connect() as connection:
                return await connection.run_sync(look)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _version(connection: Connection) -> str | None:
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _triggers(connection: Connection) -> set[str]:
    if connection.dialect.name == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    return {row[0] for row in connection.execute(text(sql))}


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _expected_triggers(backend: str) -> frozenset[str]:
    return APPEND_ONLY_TRIGGERS_POSTGRES if backend == "postgres" else APPEND_ONLY_TRIGGERS_SQLITE


def test_an_empty_database_migrates_to_head(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url(migrate=False)
    assert _inspect(url, _tables) == set()

    upgrade_to_head(url)

    assert _inspect(url, _tables) == MODEL_TABLES | {"alembic_version"}
    assert _inspect(url, _version) == head_revision()


def test_head_downgrades_to_base_and_upgrades_again(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url()

    command.downgrade(alembic_config(url), "base")

    assert _inspect(url, _tables) == {"alembic_version"}
    assert _inspect(url, _version) is None
    assert _inspect(url, _triggers) == set()

    upgrade_to_head(url)

    assert _inspect(url, _tables) == MODEL_TABLES | {"alembic_version"}
    assert _inspect(url, _version) == head_revision()
    assert _expected_triggers(backend) <= _inspect(url, _triggers)


def test_the_models_match_the_migrations(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url()

    assert _inspect(url, _schema_differences) == []


def test_upgrade_creates_the_append_only_triggers(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url()

    assert _expected_triggers(backend) <= _inspect(url, _triggers)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET kind = kind",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_postings SET amount = amount",
        "DELETE FROM ledger_postings",
    ],
)
async def test_ledger_rows_refuse_update_and_delete(database: Database, statement: str) -> None:
    async with database.transaction() as session:
        created = await make_user(session)
        await fund(session, created.primary_wallet, 100)

    # Never committed: if a trigger were missing, the shared database keeps its rows.
    async with database.engine.connect() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            await connection.execute(text(statement))
        await connection.rollback()


async def test_ledger_tables_refuse_truncate_on_postgres(postgres_url: str) -> None:
    database = Database(postgres_url, pool_size=1)
    try:
        for table in ("ledger_entries", "ledger_postings"):
            async with database.engine.connect() as connection:
                with pytest.raises(DBAPIError, match="append-only"):
                    await connection.execute(text(f"TRUNCATE {table} CASCADE"))
                await connection.rollback()
    finally:
        await database.dispose()


def test_0007_moves_unverified_phones_to_pending_and_back(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url(migrate=False)
    command.upgrade(alembic_config(url), "0006")
    user_id = "7d2f0c8e-3f5a-4c1e-9a77-0a1b2c3d4e5f"

    def insert_user(connection: Connection) -> None:
        connection.execute(
            text(
                "INSERT INTO users (id, email, phone, role, is_active, is_verified, created_at) "
                "VALUES (:id, 'old@example.com', '+2348030000001', 'user', true, true, "
                "CURRENT_TIMESTAMP)"
            ),
            {
                "id": user_id
                if connection.dialect.name == "postgresql"
                else user_id.replace("-", "")
            },
        )
        connection.commit()

    def phones(connection: Connection) -> Any:
        return connection.execute(text("SELECT phone, pending_phone FROM users")).one()

    def phone_only(connection: Connection) -> Any:
        return connection.execute(text("SELECT phone FROM users")).scalar_one()

    _inspect(url, insert_user)
    command.upgrade(alembic_config(url), "0007")
    assert tuple(_inspect(url, phones)) == (None, "+2348030000001")

    command.downgrade(alembic_config(url), "0006")
    assert _inspect(url, phone_only) == "+2348030000001"
