"""The seeded workload: operations that build requests, and the clients that send them.

An operation is a small object with a `name`, a `weight` and `build()`, which turns the
client's random stream into a request (an `Intent`). Adding a workload (deposits, withdrawals,
batch transfers) is one more operation in OPERATIONS plus, if it moves money in or out of the
wallets, its effect in coffer.check.verdict's balance model.

Each client draws from its own `random.Random(f"{seed}/{client}")`, so the same seed sends the
same requests in the same order per client; how they interleave is up to the machine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from coffer.check.client import Intent, StatusRead, read_status, send
from coffer.check.system import Holder

TRANSFER_PATH = "/api/v1/wallet/transfer"
MAX_INTENTS_PER_CLIENT_SECOND = 40
"""A bound on requests, whatever the machine's speed."""
REPLAYS_KEPT = 64
"""Accepted intents a client remembers to send again (duplicate keys)."""
STATUS_READ_SHARE = 0.3
"""Accepted transfers whose sender then reads their status, waiting up to STATUS_WAIT_SECONDS."""
STATUS_WAIT_SECONDS = 2


def _amount(rng: random.Random, currency: str) -> str:
    """A transfer amount in the sender's currency: small against the funding, so most succeed."""
    if currency == "NGN":
        return f"{rng.randint(100, 20_000)}.{rng.randint(0, 99):02d}"
    return f"{rng.randint(1, 20)}.{rng.randint(0, 99):02d}"


def _recipient(
    rng: random.Random, holders: Sequence[Holder], sender: int, same_currency: bool
) -> Holder:
    currency = holders[sender].currency
    pool = [
        h
        for i, h in enumerate(holders)
        if i != sender and (h.currency == currency) == same_currency
    ]
    return rng.choice(pool)


class Operation(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int:
        """How often it is drawn, against the other operations' weights."""

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent: ...


@dataclass(frozen=True, slots=True)
class TransferByWallet:
    """A transfer by wallet number, to a wallet in the sender's currency or (`converting`) in
    another, converted at the fixed rates."""

    name: str
    weight: int
    converting: bool

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        recipient = _recipient(rng, holders, sender, same_currency=not self.converting)
        body = {
            "wallet_number": recipient.wallet_number,
            "amount": _amount(rng, holders[sender].currency),
        }
        return _intent(rng, self.name, sender, body)


@dataclass(frozen=True, slots=True)
class TransferByEmail:
    """A transfer by the recipient's email: to their wallet in the sender's currency."""

    name: str = "transfer_by_email"
    weight: int = 20

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        recipient = _recipient(rng, holders, sender, same_currency=rng.random() < 0.5)
        body = {"email": recipient.email, "amount": _amount(rng, holders[sender].currency)}
        return _intent(rng, self.name, sender, body)


@dataclass(frozen=True, slots=True)
class Overdraft:
    """More than the sender was ever funded with: refused at intake or failed at settlement,
    never a negative balance."""

    name: str = "overdraft"
    weight: int = 4

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        holder = holders[sender]
        recipient = _recipient(rng, holders, sender, same_currency=True)
        minor = holder.funding_minor + rng.randint(1, holder.funding_minor)
        body = {
            "wallet_number": recipient.wallet_number,
            "amount": f"{minor // 100}.{minor % 100:02d}",
        }
        return _intent(rng, self.name, sender, body)


def _intent(rng: random.Random, operation: str, sender: int, body: dict[str, str]) -> Intent:
    return Intent(0, operation, sender, TRANSFER_PATH, body, f"check-{rng.getrandbits(64):016x}")


OPERATIONS: tuple[Operation, ...] = (
    TransferByWallet("transfer_by_wallet", 40, converting=False),
    TransferByWallet("transfer_converting", 20, converting=True),
    TransferByEmail(),
    Overdraft(),
)
DUPLICATE_WEIGHT = 8
"""Send an accepted intent again with its key: must replay the same reference."""
RACED_WEIGHT = 8
"""Send a new intent from two clients at once with one key: must be applied once."""


@dataclass(slots=True)
class Recorder:
    """Every intent and every re-send of one, numbered in the order they were made."""

    intents: list[Intent] = field(default_factory=list)
    duplicates: list[tuple[Intent, Intent]] = field(default_factory=list)
    """(original, the re-send with the original's key and body)."""
    raced: list[Intent] = field(default_factory=list)
    """The second of each pair sent concurrently with one key (the first is in `intents`)."""
    status_reads: list[StatusRead] = field(default_factory=list)

    def add(self, intent: Intent) -> Intent:
        intent.number = len(self.intents)
        self.intents.append(intent)
        return intent


async def run_client(
    client_number: int,
    seed: int,
    base_url: str,
    holders: Sequence[Holder],
    tokens: Sequence[str],
    recorder: Recorder,
    epoch: float,
    stop: asyncio.Event,
    max_intents: int,
) -> None:
    """One client: two connections (for raced keys), drawing operations until `stop`."""
    rng = random.Random(f"{seed}/{client_number}")
    operations: dict[str, Operation] = {op.name: op for op in OPERATIONS}
    choices = [*operations, "duplicate", "raced"]
    weights = [op.weight for op in OPERATIONS] + [DUPLICATE_WEIGHT, RACED_WEIGHT]
    accepted: list[Intent] = []
    async with (
        httpx.AsyncClient(base_url=base_url) as first,
        httpx.AsyncClient(base_url=base_url) as second,
    ):
        for _ in range(max_intents):
            if stop.is_set():
                return
            sender = rng.randrange(len(holders))
            choice = rng.choices(choices, weights)[0]
            if choice == "duplicate":
                if not accepted:
                    continue
                original = rng.choice(accepted)
                again = Intent(
                    -1, "duplicate", original.sender, original.path, original.body, original.key
                )
                recorder.duplicates.append((original, again))
                await send(first, tokens[original.sender], again, epoch)
                continue
            operation = OPERATIONS[0] if choice == "raced" else operations[choice]
            intent = recorder.add(operation.build(rng, holders, sender))
            if choice == "raced":
                twin = Intent(-1, "raced", sender, intent.path, intent.body, intent.key)
                recorder.raced.append(twin)
                await asyncio.gather(
                    send(first, tokens[sender], intent, epoch),
                    send(second, tokens[sender], twin, epoch),
                )
            else:
                await send(first, tokens[sender], intent, epoch)
            if intent.accepted:
                accepted.append(intent)
                del accepted[:-REPLAYS_KEPT]
                if rng.random() < STATUS_READ_SHARE:
                    (reference,) = intent.references
                    recorder.status_reads.append(
                        await read_status(
                            first, tokens[sender], reference, STATUS_WAIT_SECONDS, epoch
                        )
                    )


async def drive(
    seed: int,
    clients: int,
    base_url: str,
    holders: Sequence[Holder],
    tokens: Sequence[str],
    stop: asyncio.Event,
    epoch: float,
    seconds: float,
) -> Recorder:
    """Run the clients until `stop` is set (or each has sent its bound of requests); attempt
    times count from `epoch`."""
    recorder = Recorder()
    max_intents = int(seconds * MAX_INTENTS_PER_CLIENT_SECOND) + 1
    await asyncio.gather(
        *(
            run_client(n, seed, base_url, holders, tokens, recorder, epoch, stop, max_intents)
            for n in range(clients)
        )
    )
    return recorder
