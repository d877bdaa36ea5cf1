"""The printed report: the run, the violations (each must be 0), what clients saw per fault."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from coffer.check.faults import FaultWindow
from coffer.check.observe import Observation
from coffer.check.verdict import Verdict, WindowStats
from coffer.check.workload import Recorder

if TYPE_CHECKING:
    from coffer.check.bank import BankConfig


def print_report(
    config: BankConfig,
    planned_faults: int,
    windows: Sequence[FaultWindow],
    recorder: Recorder,
    verdict: Verdict,
    stats: Sequence[WindowStats],
    outcomes: Counter[str],
    seen: Observation,
    drove_seconds: float,
) -> None:
    sends = [*recorder.intents, *recorder.raced, *(d for _, d in recorder.duplicates)]
    attempts = sum(len(s.attempts) for s in sends)
    by_operation = Counter(i.operation for i in recorder.intents)
    print(
        f"coffer check bank: seed {config.seed}, {config.seconds:g} s "
        f"(drove {drove_seconds:.1f} s), {config.clients} clients, "
        f"{config.api_processes} API processes, {config.workers} workers "
        f"({'Celery on its own Redis' if config.uses_broker else 'database runner'}), "
        f"{os.cpu_count()} CPUs"
    )
    print(f"faults: {len(windows)} of {planned_faults} injected ({', '.join(config.faults)})")
    kinds = Counter(
        w.fault.kind if w.fault.kind != "restart-db" else f"restart-db -m {w.fault.variant}"
        for w in windows
    )
    print("  " + ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items())))
    print(
        f"requests: {len(recorder.intents)} ({_counts(by_operation)}), "
        f"{len(recorder.duplicates)} duplicate keys, {len(recorder.raced)} raced keys, "
        f"{attempts} sends in all"
    )
    print(
        f"  accepted {sum(1 for i in recorder.intents if i.accepted)}, "
        f"refused {sum(1 for i in recorder.intents if i.refusal is not None)}, "
        f"no definitive answer {sum(1 for i in recorder.intents if i.unknown)}, "
        f"saw an error on the way {sum(1 for i in recorder.intents if i.saw_error)}"
    )
    follow_ups = Counter(f.operation for f in recorder.follow_ups)
    print(
        f"  follow-ups: {_counts(follow_ups)}; "
        f"{seen.webhooks_received} distinct webhook events in the inbox"
    )
    print(
        "in the database: "
        + _counts(outcomes)
        + f"; settled {seen.settle_seconds:.1f} s after the late choices and redeliveries"
    )
    print()
    print("violations (each must be 0):")
    for name, count in verdict.violations.items():
        print(f"  {'ok  ' if count == 0 else 'FAIL'} {name:<48} {count}")
    for currency, delta in verdict.money_delta.items():
        print(f"       money created or destroyed, {currency:<25} {delta}")
    for failure in verdict.ledger_failures:
        print(f"       ledger: {failure}")
    for answer, count in sorted(verdict.server_errors.items()):
        print(f"       {count} x {answer}")
    for error, count in sorted(verdict.unhandled_errors.items()):
        print(f"       {count} x {error}")
    print()
    print("reported (not violations):")
    print(
        f"  client saw an error, request applied: {verdict.error_but_applied} "
        "(each answered as applied by a retry or replay with its key), "
        f"of which the client gave up on {verdict.gave_up_but_applied}"
    )
    print(f"  client saw an error, nothing applied:  {verdict.error_not_applied}")
    for note in verdict.notes:
        print(f"  {note}")
    print()
    print("ledger invariants (coffer.ledger.verify):")
    for check in seen.ledger_checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    print()
    print("what clients saw, by fault window (sends started in the window):")
    print(
        f"  {'window':<58} {'sends':>6} {'errors':>7} {'err %':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  errors by kind"
    )
    for row in stats:
        rate = 100 * row.errors / row.attempts if row.attempts else 0.0
        print(
            f"  {row.label[:58]:<58} {row.attempts:>6} {row.errors:>7} {rate:>5.1f}% "
            f"{row.p50_ms:>8.0f} {row.p99_ms:>8.0f} {row.max_ms:>8.0f}  {row.error_kinds}"
        )
    print()
    print("verdict: " + ("PASS" if verdict.ok else "FAIL"))


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))
