"""The seeded workload: operations that build requests, and the clients that send them.

An operation is a small object with a `name`, a `weight`, `build()`, which turns the client's
random stream into a request (an `Intent`), and `after()`, what the client does once that
request was accepted (a deposit's payer presses Pay or Decline on the sandbox checkout, and its
provider delivers the webhook again). Adding a workload (batch transfers, say) is one more
operation in OPERATIONS plus, if it moves money in or out of the wallets, its effect in
coffer.check.verdict's balance model and its rows in coffer.check.observe.

Each client draws from its own `random.Random(f"{seed}/{client}")`, so the same seed sends the
same requests in the same order per client; how they interleave is up to the machine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from coffer.check import webhooks
from coffer.check.client import Intent, StatusRead, read_status, send
from coffer.check.system import PAYOUT_ACCOUNTS, Holder
from coffer.kit.money import Money, parse_amount

TRANSFER_PATH = "/api/v1/wallet/transfer"
DEPOSIT_PATH = "/api/v1/wallet/deposit"
WITHDRAW_PATH = "/api/v1/wallet/withdraw"
MAX_INTENTS_PER_CLIENT_SECOND = 40
"""A bound on requests, whatever the machine's speed."""
REPLAYS_KEPT = 64
"""Accepted intents a client remembers to send again (duplicate keys)."""
STATUS_READ_SHARE = 0.3
"""Accepted requests whose sender then reads their status (a transfer's waiting up to
STATUS_WAIT_SECONDS)."""
STATUS_WAIT_SECONDS = 2
DECLINE_SHARE = 0.2
"""Deposits whose payer presses Decline instead of Pay."""
DUPLICATE_WEBHOOK_SHARE = 0.3
"""Decided deposits whose charge webhook the provider then delivers again."""
RACED_WEBHOOK_SHARE = 0.2
"""Paid deposits whose webhook the provider delivers while the payer's Pay is in flight."""


def _amount(rng: random.Random, currency: str) -> str:
    """An amount in the sender's currency: small against the funding, so most succeed."""
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


@dataclass(slots=True)
class Client:
    """What one client's operations send with: its random stream, its two connections (for
    raced keys), every holder's token, the recorder, and the sandbox's webhook secret."""

    rng: random.Random
    holders: Sequence[Holder]
    tokens: Sequence[str]
    recorder: Recorder
    epoch: float
    first: httpx.AsyncClient
    second: httpx.AsyncClient
    webhook_secret: str

    async def follow(self, intent: Intent, connection: httpx.AsyncClient | None = None) -> None:
        """Send a follow-up (a checkout choice, a webhook) and keep it for the report."""
        self.recorder.follow_ups.append(intent)
        await send(connection or self.first, "", intent, self.epoch)


class Operation(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int:
        """How often it is drawn, against the other operations' weights."""

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent: ...

    async def after(self, client: Client, intent: Intent) -> None:
        """Once `intent` was accepted: what its sender (or its provider) does next."""


class _Settled:
    """An operation whose request is all there is: nothing follows its acceptance."""

    __slots__ = ()

    async def after(self, client: Client, intent: Intent) -> None:
        return None


@dataclass(frozen=True, slots=True)
class TransferByWallet(_Settled):
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
        return _intent(rng, self.name, sender, TRANSFER_PATH, body)


@dataclass(frozen=True, slots=True)
class TransferByEmail(_Settled):
    """A transfer by the recipient's email: to their wallet in the sender's currency."""

    name: str = "transfer_by_email"
    weight: int = 20

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        recipient = _recipient(rng, holders, sender, same_currency=rng.random() < 0.5)
        body = {"email": recipient.email, "amount": _amount(rng, holders[sender].currency)}
        return _intent(rng, self.name, sender, TRANSFER_PATH, body)


@dataclass(frozen=True, slots=True)
class Overdraft(_Settled):
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
        return _intent(rng, self.name, sender, TRANSFER_PATH, body)


@dataclass(frozen=True, slots=True)
class Withdrawal(_Settled):
    """A withdrawal to one of the sender's payout destinations, whose account number tells the
    sandbox to pay, fail, ask for an OTP (a failure) or pay and then reverse: the wallet is
    debited at once and refunded exactly once on a failure or reversal."""

    name: str = "withdrawal"
    weight: int = 12

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        holder = holders[sender]
        outcome = rng.choice(tuple(PAYOUT_ACCOUNTS))
        body = {
            "amount": _amount(rng, holder.currency),
            "destination_id": dict(holder.destinations)[outcome],
        }
        return _intent(rng, self.name, sender, WITHDRAW_PATH, body)


@dataclass(frozen=True, slots=True)
class Deposit:
    """A deposit through the sandbox: started with a key, then its payer presses Pay or
    Decline on the checkout page (which sends coffer the signed webhook), and sometimes the
    provider delivers that webhook again, or while Pay is still in flight."""

    name: str = "deposit"
    weight: int = 12

    def build(self, rng: random.Random, holders: Sequence[Holder], sender: int) -> Intent:
        body = {"amount": _amount(rng, holders[sender].currency)}
        return _intent(rng, self.name, sender, DEPOSIT_PATH, body)

    async def after(self, client: Client, intent: Intent) -> None:
        (reference,) = intent.references
        pay = client.rng.random() >= DECLINE_SHARE
        holder = client.holders[intent.sender]
        amount = parse_amount(intent.body["amount"], holder.currency)
        await choose(client, intent.sender, reference, amount, pay)


def checkout_choice(sender: int, reference: str, pay: bool) -> Intent:
    """The payer's browser pressing Pay or Decline on the sandbox checkout page."""
    button = "pay" if pay else "decline"
    intent = Intent(
        -1, f"checkout_{button}", sender, f"/sandbox/checkout/{reference}/{button}", {}, ""
    )
    intent.content = b""
    intent.headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return intent


async def choose(client: Client, sender: int, reference: str, amount: Money, pay: bool) -> None:
    """The payer's choice for the deposit `reference`, and the provider's extra deliveries."""
    client.recorder.choices[reference] = pay
    webhook = webhooks.charge_delivery(
        client.webhook_secret, sender, reference, amount.minor, amount.currency.code, pay
    )
    choice = checkout_choice(sender, reference, pay)
    if pay and client.rng.random() < RACED_WEBHOOK_SHARE:
        await asyncio.gather(client.follow(choice), client.follow(webhook, client.second))
        return
    await client.follow(choice)
    if choice.accepted and client.rng.random() < DUPLICATE_WEBHOOK_SHARE:
        await client.follow(webhook)


def _intent(
    rng: random.Random, operation: str, sender: int, path: str, body: Mapping[str, object]
) -> Intent:
    return Intent(0, operation, sender, path, dict(body), f"check-{rng.getrandbits(64):016x}")


OPERATIONS: tuple[Operation, ...] = (
    TransferByWallet("transfer_by_wallet", 40, converting=False),
    TransferByWallet("transfer_converting", 20, converting=True),
    TransferByEmail(),
    Overdraft(),
    Deposit(),
    Withdrawal(),
)
RACEABLE = ("transfer_by_wallet", "deposit", "withdrawal")
"""Operations a raced key is drawn from: one key sent from two connections at once."""
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
    follow_ups: list[Intent] = field(default_factory=list)
    """Checkout choices and webhook deliveries: no money request of their own."""
    choices: dict[str, bool] = field(default_factory=dict)
    """Deposit reference -> whether its payer chose Pay."""

    def add(self, intent: Intent) -> Intent:
        intent.number = len(self.intents)
        self.intents.append(intent)
        return intent


def _again(original: Intent, operation: str) -> Intent:
    return Intent(-1, operation, original.sender, original.path, original.body, original.key)


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
    webhook_secret: str,
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
        client = Client(rng, holders, tokens, recorder, epoch, first, second, webhook_secret)
        for _ in range(max_intents):
            if stop.is_set():
                return
            sender = rng.randrange(len(holders))
            choice = rng.choices(choices, weights)[0]
            if choice == "duplicate":
                if not accepted:
                    continue
                original = rng.choice(accepted)
                again = _again(original, "duplicate")
                recorder.duplicates.append((original, again))
                await send(first, tokens[original.sender], again, epoch)
                continue
            operation = operations[rng.choice(RACEABLE) if choice == "raced" else choice]
            intent = recorder.add(operation.build(rng, holders, sender))
            if choice == "raced":
                twin = _again(intent, "raced")
                recorder.raced.append(twin)
                await asyncio.gather(
                    send(first, tokens[sender], intent, epoch),
                    send(second, tokens[sender], twin, epoch),
                )
            else:
                await send(first, tokens[sender], intent, epoch)
            if not intent.accepted:
                continue
            accepted.append(intent)
            del accepted[:-REPLAYS_KEPT]
            await operation.after(client, intent)
            if rng.random() < STATUS_READ_SHARE:
                (reference,) = intent.references
                recorder.status_reads.append(
                    await read_status(
                        first, tokens[sender], intent.kind, reference, STATUS_WAIT_SECONDS, epoch
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
    webhook_secret: str,
) -> Recorder:
    """Run the clients until `stop` is set (or each has sent its bound of requests); attempt
    times count from `epoch`."""
    recorder = Recorder()
    max_intents = int(seconds * MAX_INTENTS_PER_CLIENT_SECOND) + 1
    await asyncio.gather(
        *(
            run_client(
                n,
                seed,
                base_url,
                holders,
                tokens,
                recorder,
                epoch,
                stop,
                max_intents,
                webhook_secret,
            )
            for n in range(clients)
        )
    )
    return recorder
