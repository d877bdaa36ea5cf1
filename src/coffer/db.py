"""Engines, sessions and the unit of work.

The session is the unit of work: a request or a job opens one transaction, services add to it
and never commit, and the edge commits once (also when it ends in a `RecordedRefusal`, whose
writes must persist). On SQLite every writing transaction starts with `BEGIN IMMEDIATE`, which
serializes writers the way row locks do on PostgreSQL (DESIGN.md §4); a read-only one starts
deferred, so it never waits for (or holds) the write lock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

import structlog
from sqlalchemy import Row, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from coffer.errors import RecordedRefusal

log = structlog.get_logger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_RESET_INTERVAL_SECONDS = 1.0
"""At most one pool reset per interval, however many requests fail at once."""
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57P", "53")
"""Connection exceptions, operator intervention (shutdown, starting up), insufficient resources."""
ResultRow: TypeAlias = Row[*tuple[Any, ...]]
"""A row of a Core query with any columns."""
JOBS_ENQUEUED = "jobs_enqueued"
"""Key in `session.info`, set by the outbox when a job was written in this transaction."""
_READ_ONLY = "coffer_read_only"
"""Execution option of the read-only session factory's connections (SQLite: deferred BEGIN),
and the `session.info` key that marks such a session."""
_DATABASE = "coffer_database"
"""Key in `session.info`: the `Database` the session belongs to."""


def async_database_url(url: str) -> str:
    """Accept plain `sqlite:///x.db` / `postgresql://...` URLs and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"Unsupported database backend: {backend}")


def violates(error: IntegrityError, *constraints: str) -> bool:
    """Whether the error names one of these constraints (PostgreSQL) or columns (SQLite).

    PostgreSQL reports `uq_wallets_number`, SQLite `UNIQUE constraint failed: wallets.number`,
    so callers list both spellings.
    """
    text = str(error.orig)
    return any(constraint in text for constraint in constraints)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_ASYNCPG_CONNECTION_STATE_ERRORS = frozenset(
    {"ConnectionDoesNotExistError", "InterfaceError", "InternalClientError"}
)
"""asyncpg's client-side errors about the connection itself (closed, in a broken protocol
state after its server went away: `ProtocolError` and the other `InternalClientError`s), by
name so SQLite-only installs need not import asyncpg."""


def _is_asyncpg_connection_state_error(cause: BaseException) -> bool:
    return any(
        klass.__module__.startswith("asyncpg")
        and klass.__name__ in _ASYNCPG_CONNECTION_STATE_ERRORS
        for klass in type(cause).__mro__
    )


def error_chain(error: BaseException) -> list[str]:
    """The types along an error's cause chain, each with its SQLSTATE when it has one: what
    failed, for a log line, without any message (messages may quote statements and their
    parameters)."""
    found = []
    for cause in _causes(error):
        sqlstate = getattr(cause, "sqlstate", None)
        name = f"{type(cause).__module__}.{type(cause).__qualname__}"
        found.append(f"{name} (SQLSTATE {sqlstate})" if isinstance(sqlstate, str) else name)
    return found


def unavailable_reason(error: BaseException) -> str | None:
    """Why the database cannot be used right now (a restart, a refused or reset connection, a
    full pool, SQLite's lock held past the busy timeout), or None when the error is anything
    else: a refused statement or a bug, which stays a 500.

    The reason names the failing cause and its SQLSTATE, never the statement or its
    parameters (which may carry hashes or codes)."""
    for cause in _causes(error):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
            return f"{type(cause).__name__} (SQLSTATE {sqlstate})"
        if isinstance(cause, OSError):
            return f"{type(cause).__name__}: {cause.strerror or 'connection failed'}"
        if isinstance(cause, PoolTimeout):
            return "connection pool exhausted"
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return f"connection lost ({type(cause.orig).__name__})"
        if _is_asyncpg_connection_state_error(cause):
            return f"connection lost ({type(cause).__name__})"
        if isinstance(cause, DBAPIError) and "database is locked" in str(cause.orig):
            return "SQLite is locked by another writer"
    return None


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so `begin` below decides how to start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; created once per process (or per test)."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 0) -> None:
        self.url = async_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {"pool_pre_ping": False}
        if not self.is_sqlite:
            options |= {"pool_size": pool_size, "max_overflow": max_overflow}
        self.engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self.jobs_committed_listeners: list[Callable[[], None]] = []
        """Called after a commit that enqueued jobs: the embedded runner wakes at once."""
        self._last_pool_reset = 0.0

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back if it raises, except for
        a `RecordedRefusal`, which is raised again once what it wrote is committed.

        `read_only` (on SQLite): a deferred transaction, which neither waits for nor takes the
        write lock; the few writes such a unit of work may need go through `writer_for`."""
        refusal: RecordedRefusal | None = None
        deferred = read_only and self.is_sqlite
        factory = self.read_sessionmaker if deferred else self.sessionmaker
        async with factory() as session:
            session.info[_DATABASE] = self
            session.info[_READ_ONLY] = deferred
            async with session.begin():
                try:
                    yield session
                except RecordedRefusal as error:
                    refusal = error
            if session.info.pop(JOBS_ENQUEUED, False):
                for listener in self.jobs_committed_listeners:
                    listener()
        if refusal is not None:
            raise refusal

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-only unit of work, for what must be read before slow work (argon2) without
        holding anything: on SQLite it starts deferred, so it takes no write lock."""
        return self.transaction(read_only=True)

    async def reset_pool(self, reason: str) -> None:
        """Drop every pooled connection after the database went away: a restarted server
        leaves the pool full of dead connections, and each would fail one more request.
        Pinging on every checkout would cost a round trip per request instead."""
        now = time.monotonic()
        if now - self._last_pool_reset < POOL_RESET_INTERVAL_SECONDS:
            return
        self._last_pool_reset = now
        log.warning("db.pool_reset", reason=reason)
        await self.engine.dispose()

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def writer_for(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Where a small write beside a request's reads goes (a last-seen stamp, a revocation): the
    session itself, unless it is a read-only one on SQLite, whose deferred transaction could
    not safely upgrade to the write lock (a writer that committed since its first read makes
    the upgrade fail); then a short unit of work of its own, committed at once."""
    if not session.info.get(_READ_ONLY):
        yield session
        return
    database: Database = session.info[_DATABASE]
    async with database.transaction() as apart:
        yield apart
