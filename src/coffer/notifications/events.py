"""The event catalogue: what coffer tells a user (over the websocket) and an integrator (by
outbound webhook) about their money, each type with a versioned schema.

Events are an outbox: `record_event` / `record_events` add them to the caller's unit of work,
and they are written when it commits, in one multi-row insert, or not at all (a rollback, or a
savepoint rolled back around them, drops them), so none is lost or invented. Balance changes
need no call: the ledger holds each posted entry's new balances in the session, and every
wallet among them becomes a `balance.updated` here.

Ids are the resume cursor, so they are allocated in commit order: on PostgreSQL the insert
takes a transaction-scoped advisory lock first and holds it to the commit (writers of events
queue for the few milliseconds of their insert and commit, never while they wait on row locks:
the insert is the transaction's last statement); on SQLite writers are serialized anyway. A
reader that has seen event N has therefore seen every event below N that will ever exist.

Envelope (every type): `{"id": 42, "type": "transfer.completed", "version": 1,
"created_at": "2026-12-02T10:00:00Z", "data": {...}}`. A type's `version` changes only when a
field is removed or changes meaning; new fields may appear in any version.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from coffer.kit import pending
from coffer.kit.clock import utcnow
from coffer.kit.money import format_minor, get_currency
from coffer.ledger.service import BALANCES_CHANGED, BalancesChanged
from coffer.notifications import repository
from coffer.schemas import Schema, UtcDateTime

_EVENTS = "notifications.events"
"""`coffer.kit.pending` kind of the events recorded in a transaction."""
_WRITTEN = "notifications.events_written"
"""Key in `session.info`: this transaction wrote events (the listeners run after its commit)."""


class EventType(StrEnum):
    TRANSFER_COMPLETED = "transfer.completed"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_RECEIVED = "transfer.received"
    DEPOSIT_SUCCEEDED = "deposit.succeeded"
    DEPOSIT_FAILED = "deposit.failed"
    WITHDRAWAL_PAID = "withdrawal.paid"
    WITHDRAWAL_FAILED = "withdrawal.failed"
    WITHDRAWAL_REVERSED = "withdrawal.reversed"
    WALLET_FROZEN = "wallet.frozen"
    WALLET_UNFROZEN = "wallet.unfrozen"
    WALLET_BLOCKED = "wallet.blocked"
    WALLET_UNBLOCKED = "wallet.unblocked"
    FEE_CHARGED = "fee.charged"
    BALANCE_UPDATED = "balance.updated"


class EventData(Schema):
    """A type's `data`; subclasses name their type and schema version."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    type: ClassVar[EventType]
    version: ClassVar[int] = 1


class _Money(EventData):
    amount: str
    """In the currency's major unit, with exactly its decimals, e.g. `"1250.00"`."""
    currency: str


class TransferCompleted(_Money):
    """To the sender: the money reached the recipient's wallet."""

    type = EventType.TRANSFER_COMPLETED
    reference: str
    wallet_number: str
    """The sender's wallet."""
    recipient_wallet_number: str
    receive_amount: str | None = None
    """What the recipient got, when the transfer converted currencies."""
    receive_currency: str | None = None


class TransferFailed(_Money):
    """To the sender: the transfer was refused when it settled; nothing moved."""

    type = EventType.TRANSFER_FAILED
    reference: str
    wallet_number: str
    recipient_wallet_number: str
    failure_reason: str
    """An error code, e.g. `insufficient_funds`, `recipient_wallet_frozen`."""


class TransferReceived(_Money):
    """To the recipient: money arrived in their wallet."""

    type = EventType.TRANSFER_RECEIVED
    reference: str
    wallet_number: str
    """The recipient's wallet (amount and currency are what it received)."""
    sender_wallet_number: str
    sender_name: str | None = None


class DepositSucceeded(_Money):
    """The provider confirmed the charge; the wallet was credited."""

    type = EventType.DEPOSIT_SUCCEEDED
    reference: str
    wallet_number: str
    provider: str


class DepositFailed(_Money):
    """The provider failed the charge, or it was abandoned; nothing was credited."""

    type = EventType.DEPOSIT_FAILED
    reference: str
    wallet_number: str
    provider: str
    status: Literal["failed", "abandoned"]
    failure_reason: str


class WithdrawalPaid(_Money):
    """The provider reported the payout paid."""

    type = EventType.WITHDRAWAL_PAID
    reference: str
    wallet_number: str
    provider: str


class WithdrawalFailed(_Money):
    """The payout never left; the amount is back in the wallet."""

    type = EventType.WITHDRAWAL_FAILED
    reference: str
    wallet_number: str
    provider: str
    failure_reason: str


class WithdrawalReversed(_Money):
    """The bank returned the payout (possibly after it was paid); the amount is back."""

    type = EventType.WITHDRAWAL_REVERSED
    reference: str
    wallet_number: str
    provider: str
    failure_reason: str
    was_paid: bool
    """True when the bank returned a payout that had already been reported paid."""


class _WalletState(EventData):
    wallet_number: str
    currency: str
    status: str
    """The wallet's status after the change: `active`, `frozen`, `blocked`."""


class WalletFrozen(_WalletState):
    """An operator froze the wallet: no money in or out."""

    type = EventType.WALLET_FROZEN
    reason: str


class WalletUnfrozen(_WalletState):
    """An operator unfroze the wallet (it may still be blocked by owed fees)."""

    type = EventType.WALLET_UNFROZEN
    reason: str


class WalletBlocked(_WalletState):
    """A fee could not be paid: no money may leave the wallet until a credit pays it."""

    type = EventType.WALLET_BLOCKED
    owed_amount: str
    """The fee that could not be paid."""
    reference: str
    """The fee period's reference."""


class WalletUnblocked(_WalletState):
    """A credit paid the owed fees; money may leave the wallet again."""

    type = EventType.WALLET_UNBLOCKED
    paid_amount: str
    """The owed fees this credit paid."""


class FeeCharged(_Money):
    """The monthly maintenance fee was taken from the wallet."""

    type = EventType.FEE_CHARGED
    reference: str
    wallet_number: str
    period: int
    """The wallet's fee period (1 = its first 30 days)."""


class BalanceUpdated(EventData):
    """A wallet's balance changed (one per ledger entry that moved it)."""

    type = EventType.BALANCE_UPDATED
    wallet_number: str
    currency: str
    balance: str
    """The wallet's balance right after the entry, e.g. `"1250.00"`."""
    reference: str
    """The ledger entry's reference: a transfer's, deposit's, withdrawal's or fee's."""
    cause: str
    """The entry's kind: `transfer`, `deposit`, `withdrawal`, `withdrawal_reversal`, `fee`,
    `adjustment`."""


CATALOGUE: Mapping[EventType, type[EventData]] = {
    model.type: model
    for model in (
        TransferCompleted,
        TransferFailed,
        TransferReceived,
        DepositSucceeded,
        DepositFailed,
        WithdrawalPaid,
        WithdrawalFailed,
        WithdrawalReversed,
        WalletFrozen,
        WalletUnfrozen,
        WalletBlocked,
        WalletUnblocked,
        FeeCharged,
        BalanceUpdated,
    )
}
"""Every event type and its data schema."""


class EventEnvelope(Schema):
    """What a websocket client or webhook receiver is sent, for every type."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """Increasing in commit order: the websocket's `last_event_id` resume cursor."""
    type: EventType
    version: int
    created_at: UtcDateTime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    user_id: uuid.UUID
    type: str
    version: int
    data: dict[str, Any]
    created_at: datetime

    def envelope(self) -> dict[str, Any]:
        """The JSON-ready envelope."""
        return EventEnvelope(
            id=self.id,
            type=EventType(self.type),
            version=self.version,
            created_at=self.created_at,
            data=self.data,
        ).model_dump(mode="json")

    def to_json(self) -> str:
        """The envelope as compact JSON text (what a socket or a webhook receiver is sent)."""
        return json.dumps(self.envelope(), separators=(",", ":"))


def record_event(session: AsyncSession, user_id: uuid.UUID, data: EventData) -> None:
    """Announce `data` to `user_id` when (and only if) the caller's transaction commits."""
    record_events(session, [(user_id, data)])


def record_events(session: AsyncSession, events: Iterable[tuple[uuid.UUID, EventData]]) -> None:
    """`record_event` for many, in order (the transfer processor's batch)."""
    for user_id, data in events:
        pending.add(session, _EVENTS, (user_id, data))


_committed_listeners: list[Callable[[], None]] = []


def on_events_committed(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` (in the committing thread, so it must only schedule work) after each
    commit in this process that wrote events; returns a function that removes it."""
    _committed_listeners.append(listener)
    return lambda: _committed_listeners.remove(listener)


def _row(user_id: uuid.UUID, data: EventData, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "type": str(data.type),
        "version": data.version,
        "data": data.model_dump(mode="json"),
        "created_at": now,
    }


def _balance_events(
    session: Session, changes: Sequence[BalancesChanged]
) -> dict[int, list[tuple[uuid.UUID, EventData]]]:
    """The `balance.updated` of each wallet each change moved, by the change's position."""
    wallets = repository.wallets_by_ledger_account(
        session, {account for change in changes for account in change.balances_after}
    )
    found: dict[int, list[tuple[uuid.UUID, EventData]]] = {}
    for position, change in enumerate(changes):
        for account, balance in sorted(change.balances_after.items()):
            wallet = wallets.get(account)
            if wallet is None:
                continue
            found.setdefault(position, []).append(
                (
                    wallet.user_id,
                    BalanceUpdated(
                        wallet_number=wallet.number,
                        currency=wallet.currency,
                        balance=format_minor(balance, get_currency(wallet.currency)),
                        reference=change.reference,
                        cause=change.kind,
                    ),
                )
            )
    return found


@event.listens_for(Session, "before_commit")
def _write_events(session: Session) -> None:
    """Write the transaction's events as its last statements (see the module doc)."""
    if session.in_nested_transaction():
        return
    held = pending.take(session, _EVENTS, BALANCES_CHANGED)
    if not held:
        return
    changes = [item for kind, item in held if kind == BALANCES_CHANGED]
    balances = _balance_events(session, changes) if changes else {}
    ordered: list[tuple[uuid.UUID, EventData]] = []
    position = 0
    for kind, item in held:
        if kind == BALANCES_CHANGED:
            ordered.extend(balances.get(position, []))
            position += 1
        else:
            ordered.append(item)
    if not ordered:
        return
    now = utcnow()
    repository.insert_events(session, [_row(user_id, data, now) for user_id, data in ordered])
    session.info[_WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _announce_commit(session: Session) -> None:
    if session.info.pop(_WRITTEN, False):
        for listener in list(_committed_listeners):
            listener()


@event.listens_for(Session, "after_soft_rollback")
def _forget_written(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_WRITTEN, None)


async def events_after(
    session: AsyncSession,
    after_id: int,
    *,
    limit: int,
    user_ids: Collection[uuid.UUID] | None = None,
) -> list[StoredEvent]:
    """Committed events with ids above `after_id`, oldest first (of these users, when given)."""
    rows = await repository.events_after(session, after_id, limit=limit, user_ids=user_ids)
    return [
        StoredEvent(row.id, row.user_id, row.type, row.version, row.data, row.created_at)
        for row in rows
    ]


async def newest_event_id(session: AsyncSession) -> int:
    """The id of the newest committed event (0 when there is none)."""
    return await repository.newest_event_id(session)


PURGE_JOB = "notifications.purge_events"
PURGE_BATCH = 5000
"""Events deleted per transaction, so a purge never holds a long transaction."""


async def purge_expired(session: AsyncSession, retention_seconds: int) -> int:
    """Delete up to `PURGE_BATCH` events older than the retention; how many went."""
    cutoff = utcnow() - timedelta(seconds=retention_seconds)
    return await repository.delete_events_before(session, cutoff, limit=PURGE_BATCH)


def openapi_description() -> str:
    """The catalogue as a Markdown section of the API description."""
    lines = [
        "## Live events",
        "",
        "Sent over the websocket `GET /api/v1/ws` (and to webhook endpoints), each in the "
        "envelope `EventEnvelope`: `id` (increasing in commit order; the resume cursor), "
        "`type`, `version` (of the type's data schema), `created_at`, `data`. Amounts are "
        "strings with the currency's decimals.",
        "",
        'The websocket\'s first message authenticates: `{"action": "authenticate", '
        '"token": "<access token>"}` or `{"action": "authenticate", "api_key": '
        '"<key with read>"}`, optionally with `"last_event_id": N` to replay what came '
        'after N (within the retention). It is answered `{"type": "authenticated", '
        '"last_event_id": N}`, or closed with 4401 and the reason. Then the user\'s events, '
        '`{"type": "heartbeat"}` when idle, and a 4401 close when the session or key '
        "ends.",
        "",
        "| type | version | data schema | meaning |",
        "|---|---|---|---|",
    ]
    for event_type, model in CATALOGUE.items():
        doc = (model.__doc__ or "").strip()
        lines.append(f"| `{event_type}` | {model.version} | `{_schema_name(event_type)}` | {doc} |")
    return "\n".join(lines)


def _schema_name(event_type: EventType) -> str:
    return "Event_" + event_type.replace(".", "_")


def openapi_schemas() -> dict[str, Any]:
    """JSON schemas of the envelope and of each type's data, for the OpenAPI components."""
    schemas: dict[str, Any] = {}
    models: list[tuple[str, type[Schema]]] = [("EventEnvelope", EventEnvelope)]
    models += [(_schema_name(event_type), model) for event_type, model in CATALOGUE.items()]
    for name, model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        if issubclass(model, EventData):
            schema["title"] = f"{model.type} (version {model.version})"
        schemas[name] = schema
    return schemas


__all__ = [
    "CATALOGUE",
    "PURGE_JOB",
    "BalanceUpdated",
    "DepositFailed",
    "DepositSucceeded",
    "EventData",
    "EventEnvelope",
    "EventType",
    "FeeCharged",
    "StoredEvent",
    "TransferCompleted",
    "TransferFailed",
    "TransferReceived",
    "WalletBlocked",
    "WalletFrozen",
    "WalletUnblocked",
    "WalletUnfrozen",
    "WithdrawalFailed",
    "WithdrawalPaid",
    "WithdrawalReversed",
    "events_after",
    "newest_event_id",
    "on_events_committed",
    "openapi_description",
    "openapi_schemas",
    "purge_expired",
    "record_event",
    "record_events",
]
