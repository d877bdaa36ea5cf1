"""From what the clients saw and what the cluster holds, the counts the report stands on.

Every count under "violations" must be zero. The balance model is the bank's: each wallet ends
at its funding plus what completed transfers paid in, minus what they took out, plus its
credited deposits (money entering from the provider's system account), minus every accepted
withdrawal (leaving at once), plus the ones that failed or were reversed (given back once); any
difference is money the system created or destroyed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from coffer.check.client import FINAL_STATUSES, Attempt, AttemptResult, Intent
from coffer.check.faults import FaultWindow
from coffer.check.observe import DepositRow, Observation, Row, TransferRow, WithdrawalRow
from coffer.check.system import PAYOUT_ACCOUNTS, Holder
from coffer.check.workload import Recorder
from coffer.kit.money import parse_amount


@dataclass(slots=True)
class Verdict:
    money_delta: dict[str, int] = field(default_factory=dict)
    """Per currency: actual minus expected wallet balances, in minor units."""
    negative_balances: int = 0
    applied_twice: int = 0
    lost: int = 0
    pending: int = 0
    conflicting_answers: int = 0
    """One key answered with two references, or accepted and refused."""
    applied_differently: int = 0
    """A transfer row whose amount or recipient is not what its request asked."""
    unrequested: int = 0
    """Transfers no client asked for."""
    status_mismatches: int = 0
    """The status route tells the sender something other than the database holds."""
    unknown_after_accept: int = 0
    """A status read after a 202 that answered 404: the promise was not yet (or not) kept."""
    status_contradictions: int = 0
    """A final status read during the run that differs from the final outcome."""
    server_errors: Counter[str] = field(default_factory=Counter)
    """5xx answers other than 503, by route, status and error code."""
    webhooks_applied_twice: int = 0
    """A deposit credited, or a withdrawal settled or refunded, more than once."""
    outcome_mismatches: int = 0
    """A withdrawal that ended other than its destination's sandbox rule says, or a deposit
    other than its payer chose."""
    error_but_applied: int = 0
    """Requests whose client saw an error (a timeout, a dropped connection, 503) that were
    applied: each must then be answered as applied, by a retry or by a replay at the end."""
    gave_up_but_applied: int = 0
    """Of those, ones whose client never got a definitive answer (replayed at the end)."""
    error_but_applied_unconfirmed: int = 0
    """Of those, ones no retry or replay with the same key answered as the applied transfer."""
    error_not_applied: int = 0
    unhandled_errors: Counter[str] = field(default_factory=Counter)
    """Distinct errors the API processes logged as unhandled (coffer.check.logs), counted."""
    ledger_failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> dict[str, int]:
        return {
            "money created or destroyed (all currencies)": sum(
                abs(v) for v in self.money_delta.values()
            ),
            "negative balances": self.negative_balances,
            "accepted requests applied twice": self.applied_twice,
            "accepted requests lost": self.lost,
            "requests still pending after settling": self.pending,
            "one key, conflicting answers": self.conflicting_answers,
            "applied differently from asked": self.applied_differently,
            "requests nobody asked for": self.unrequested,
            "status route disagrees with the database": self.status_mismatches,
            "accepted transfer unknown to its status route": self.unknown_after_accept,
            "status read contradicts the final outcome": self.status_contradictions,
            "5xx answers other than 503": self.server_errors.total(),
            "unhandled errors in the process logs": self.unhandled_errors.total(),
            "webhook events applied twice": self.webhooks_applied_twice,
            "payment outcome differs from the provider's": self.outcome_mismatches,
            "errors-but-applied not confirmed by a replay": self.error_but_applied_unconfirmed,
            "ledger invariants failed": len(self.ledger_failures),
        }

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


def _by_key(
    intents: Sequence[Intent], holders: Sequence[Holder]
) -> dict[tuple[str, str], list[Intent]]:
    grouped: dict[tuple[str, str], list[Intent]] = defaultdict(list)
    for intent in intents:
        grouped[(holders[intent.sender].email, intent.key)].append(intent)
    return grouped


def _asked_as_applied(intent: Intent, row: Row, holders: Sequence[Holder]) -> bool:
    sender = holders[intent.sender]
    asked = parse_amount(intent.body["amount"], sender.currency)
    if isinstance(row, DepositRow):
        return (row.amount_minor, row.currency, row.wallet) == (
            asked.minor,
            sender.currency,
            sender.wallet_number,
        )
    if isinstance(row, WithdrawalRow):
        outcome = next(o for o, i in sender.destinations if i == intent.body["destination_id"])
        return (row.amount_minor, row.currency, row.wallet, row.account_last4) == (
            asked.minor,
            sender.currency,
            sender.wallet_number,
            PAYOUT_ACCOUNTS[outcome][-4:],
        )
    if (row.amount_minor, row.currency, row.sender_wallet) != (
        asked.minor,
        sender.currency,
        sender.wallet_number,
    ):
        return False
    if "wallet_number" in intent.body:
        return bool(row.recipient_wallet == intent.body["wallet_number"])
    recipient = next(h for h in holders if h.email == intent.body["email"])
    # By email: the recipient's wallet in the sender's currency, else their primary one; every
    # holder has only a primary wallet.
    return row.recipient_wallet == recipient.wallet_number


def _describe(row: Row) -> str:
    return f"{type(row).__name__} {row.reference} {row.status} key={row.key} {row.sender_email}"


def _sends(intent: Intent) -> str:
    return ", ".join(
        f"{a.started:.1f}s {a.result}{f' {a.status}' if a.status else ''}"
        f"{f' {a.code}' if a.code else ''}"
        for a in intent.attempts
    )


def _unsettled(row: Row) -> bool:
    """Still in flight after settling: a promise not yet kept. A deposit nobody chose Pay or
    Decline for is pending by right (the workload always chooses, also for late ones)."""
    if isinstance(row, DepositRow) and row.charge_status in (None, "pending"):
        return False
    return row.status not in FINAL_STATUSES


def judge(
    recorder: Recorder,
    holders: Sequence[Holder],
    seen: Observation,
    statuses: dict[str, str | None],
) -> Verdict:
    verdict = Verdict(pending=seen.pending)
    every_send = [*recorder.intents, *recorder.raced, *(d for _, d in recorder.duplicates)]
    rows = seen.rows
    by_reference = {r.reference: r for r in rows.values()}
    grouped = _by_key(every_send, holders)

    for key, sends in grouped.items():
        references = set().union(*(s.references for s in sends))
        refused = any(s.refusal is not None for s in sends)
        accepted = any(s.accepted for s in sends)
        if len(references) > 1 or (accepted and refused):
            verdict.conflicting_answers += 1
            verdict.notes.append(
                f"conflicting answers for {key[1]} ({sends[0].operation}): "
                + " / ".join(_sends(s) for s in sends)
            )
        if len(references) > 1:
            verdict.applied_twice += len(references) - 1
        row = rows.get(key)
        for reference in references:
            if reference not in by_reference or _unsettled(by_reference[reference]):
                verdict.lost += 1
        saw_error = any(s.saw_error for s in sends)
        if row is None:
            verdict.error_not_applied += saw_error
            continue
        verdict.error_but_applied += saw_error
        if (
            isinstance(row, TransferRow)
            and row.status == "completed"
            and row.ledger_entry_id is None
        ):
            verdict.lost += 1
        if not _asked_as_applied(sends[0], row, holders):
            verdict.applied_differently += 1
        if not accepted:
            verdict.gave_up_but_applied += 1
            verdict.notes.append(
                f"gave up: {_describe(row)} after {' / '.join(_sends(s) for s in sends)}"
            )
    requested = set(grouped)
    verdict.unrequested = sum(1 for key in rows if key not in requested) + sum(
        1 for row in seen.keyless if not (isinstance(row, DepositRow) and row.status == "failed")
    )
    verdict.applied_twice += sum(count - 1 for count in seen.entries_per_reference.values())
    verdict.server_errors = Counter(
        f"{s.path} {a.status} {a.code}"
        for s in [*every_send, *recorder.follow_ups]
        for a in s.attempts
        if a.result is AttemptResult.SERVER_ERROR
    )
    verdict.status_mismatches = sum(
        1
        for reference, told in statuses.items()
        if reference in by_reference and told != by_reference[reference].status
    )
    for read in recorder.status_reads:
        final = by_reference.get(read.reference)
        if read.attempt.status == 404:
            verdict.unknown_after_accept += 1
        elif read.status in ("completed", "failed") and (
            final is None or final.status != read.status
        ):
            verdict.status_contradictions += 1
    _payments(verdict, recorder, seen)
    _balance_model(verdict, holders, seen)
    verdict.ledger_failures = [
        f"{c.name}: {c.violations} ({c.detail})" for c in seen.ledger_checks if not c.ok
    ]
    return verdict


WITHDRAWAL_ENDS = {"0000": "failed", "1111": "failed", "9999": "reversed"}
"""The sandbox's rule by the account's last four digits; any other ends in success."""


def _payments(verdict: Verdict, recorder: Recorder, seen: Observation) -> None:
    """Each deposit credited at most once and as its payer chose; each withdrawal debited
    once, settled at most once, refunded at most once, ending as its destination's rule says."""
    entries = seen.payment_entries
    for deposit in seen.deposits:
        if entries.get(deposit.reference, 0) > 1:
            verdict.webhooks_applied_twice += 1
        chose = recorder.choices.get(deposit.reference)
        credited = deposit.status == "success"
        if (chose is not None and deposit.status in FINAL_STATUSES and credited != chose) or (
            credited != (entries.get(deposit.reference, 0) == 1)
        ):
            verdict.outcome_mismatches += 1
    for withdrawal in seen.withdrawals:
        ref = withdrawal.reference
        given_back = entries.get(f"{ref}.refund", 0) + entries.get(f"{ref}.reversal", 0)
        if entries.get(ref, 0) != 1 or entries.get(f"{ref}.settled", 0) > 1 or given_back > 1:
            verdict.webhooks_applied_twice += 1
        if withdrawal.status not in FINAL_STATUSES:
            continue
        expected = WITHDRAWAL_ENDS.get(withdrawal.account_last4, "success")
        if withdrawal.status != expected or given_back != (expected != "success"):
            verdict.outcome_mismatches += 1


def _balance_model(verdict: Verdict, holders: Sequence[Holder], seen: Observation) -> None:
    expected = {h.wallet_number: h.funding_minor for h in holders}
    for row in seen.transfers:
        if row.status == "completed":
            expected[row.sender_wallet] -= row.amount_minor
            expected[row.recipient_wallet] += row.receive_minor
    for deposit in seen.deposits:
        if deposit.status == "success":
            expected[deposit.wallet] += deposit.amount_minor
    for withdrawal in seen.withdrawals:
        expected[withdrawal.wallet] -= withdrawal.amount_minor
        if withdrawal.status in ("failed", "reversed"):
            expected[withdrawal.wallet] += withdrawal.amount_minor
    delta: dict[str, int] = defaultdict(int)
    for number, (currency, balance) in seen.wallets.items():
        delta[currency] += balance - expected.get(number, 0)
        if balance < 0:
            verdict.negative_balances += 1
    verdict.money_delta = {c: delta[c] for c in sorted(delta)}


def unknown_but_applied(
    recorder: Recorder, holders: Sequence[Holder], seen: Observation
) -> list[tuple[Intent, Row]]:
    """Intents whose client never got a definitive answer but whose request was applied."""
    rows = seen.rows
    found = []
    for key, sends in _by_key([*recorder.intents, *recorder.raced], holders).items():
        row = rows.get(key)
        if row is not None and not any(s.accepted for s in sends):
            found.append((sends[0], row))
    return found


def confirm_replays(
    verdict: Verdict, replays: Sequence[tuple[Intent, Row]], statuses: dict[str, str | None]
) -> None:
    """Each error-but-applied request, replayed with its key, must be answered as the applied
    request (its reference, marked replayed) whose status route shows it settled."""
    for again, row in replays:
        answered = again.references == {row.reference} and any(
            a.replayed for a in again.attempts if a.result is AttemptResult.ACCEPTED
        )
        if not answered or statuses.get(row.reference) not in FINAL_STATUSES:
            verdict.error_but_applied_unconfirmed += 1
            verdict.notes.append(
                f"not confirmed: {_describe(row)} told {statuses.get(row.reference)}; "
                f"replay answered {sorted(again.references)}: {_sends(again)}"
            )


@dataclass(frozen=True, slots=True)
class WindowStats:
    label: str
    attempts: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    error_kinds: str
    """How the errors looked to the client: `unavailable 12, transport 2`."""


def _percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * share))]


def window_stats(recorder: Recorder, windows: Sequence[FaultWindow]) -> list[WindowStats]:
    """Attempts started in each fault window (and outside every window), with how many the
    client saw as errors and how long they took."""
    attempts = [
        a
        for s in [
            *recorder.intents,
            *recorder.raced,
            *(d for _, d in recorder.duplicates),
            *recorder.follow_ups,
        ]
        for a in s.attempts
    ] + [read.attempt for read in recorder.status_reads]
    buckets: dict[str, list[Attempt]] = {"no fault": []}
    labels = []
    for window in windows:
        label = f"{window.started:7.1f}s {window.fault.kind} ({window.detail})"
        labels.append((window, label))
        buckets[label] = []
    for attempt in attempts:
        inside = [
            label for window, label in labels if window.started <= attempt.started < window.ended
        ]
        for label in inside or ["no fault"]:
            buckets[label].append(attempt)
    stats = []
    for label, bucket in buckets.items():
        latencies = sorted(a.seconds * 1000 for a in bucket)
        stats.append(
            WindowStats(
                label,
                len(bucket),
                sum(1 for a in bucket if a.result.is_error),
                _percentile(latencies, 0.5),
                _percentile(latencies, 0.99),
                latencies[-1] if latencies else 0.0,
                ", ".join(
                    f"{kind} {count}"
                    for kind, count in sorted(
                        Counter(str(a.result) for a in bucket if a.result.is_error).items()
                    )
                ),
            )
        )
    return stats
