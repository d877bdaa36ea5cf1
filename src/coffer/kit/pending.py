"""Work held in a session until its transaction commits.

Some writes must happen as late as possible in a transaction (events take a lock that orders
them by commit, and a lock taken early would be held while other row locks are awaited), yet
must belong to the part of the transaction that asked for them: an item added inside a
savepoint that rolls back is dropped with it, so nothing is announced that did not happen.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "coffer_pending"
"""Key in `session.info`: a list of (transaction, kind, item) in the order they were added."""


def add(session: AsyncSession | Session, kind: str, item: Any) -> None:
    """Hold `item` under `kind` until the session's outermost transaction commits."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(_PENDING, []).append((transaction, kind, item))


def take(session: Session, *kinds: str) -> list[tuple[str, Any]]:
    """Remove and return the (kind, item) held under these kinds, in the order added."""
    held: list[tuple[SessionTransaction | None, str, Any]] = session.info.get(_PENDING, [])
    taken = [(kind, item) for _, kind, item in held if kind in kinds]
    session.info[_PENDING] = [entry for entry in held if entry[1] not in kinds]
    return taken


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    held = session.info.get(_PENDING)
    if held:
        session.info[_PENDING] = [e for e in held if not _within(e[0], previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _drop_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
