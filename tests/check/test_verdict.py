"""The checker's own rules, without a cluster: the schedule and workload repeat per seed, and
the judge flags what it must (money made from nothing, a key applied twice, a lost request)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from coffer.check import FAULTS
from coffer.check.client import Attempt, AttemptResult, Intent
from coffer.check.faults import plan
from coffer.check.logs import unhandled_errors
from coffer.check.observe import DepositRow, Observation, TransferRow, WithdrawalRow
from coffer.check.system import Holder
from coffer.check.verdict import judge
from coffer.check.workload import OPERATIONS, Recorder

HOLDERS = [
    Holder("a@check.example.com", "1000000000001", "NGN", 100_000),
    Holder("b@check.example.com", "1000000000002", "NGN", 100_000),
]


def test_same_seed_same_schedule_with_every_fault_twice() -> None:
    first, again, other = plan(5, FAULTS, 45), plan(5, FAULTS, 45), plan(6, FAULTS, 45)
    assert first == again
    assert first != other
    for fault in FAULTS:
        assert sum(1 for f in first if f.kind == fault) >= 2
    modes = {f.variant for f in first if f.kind == "restart-db"}
    assert modes == {"fast", "immediate"}
    assert all(0 < f.at_seconds < 45 for f in first)


def test_same_seed_same_requests() -> None:
    def requests(seed: int) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        return [
            (intent.key, str(intent.body))
            for intent in (OPERATIONS[0].build(rng, HOLDERS, 0) for _ in range(20))
        ]

    assert requests(3) == requests(3)
    assert requests(3) != requests(4)


def _accepted(key: str, reference: str) -> Intent:
    intent = Intent(
        0,
        "transfer_by_wallet",
        0,
        "/api/v1/wallet/transfer",
        {"wallet_number": HOLDERS[1].wallet_number, "amount": "10.00"},
        key,
    )
    intent.attempts.append(Attempt(1.0, 0.1, AttemptResult.ACCEPTED, 202, None, reference))
    return intent


def _row(key: str, reference: str) -> TransferRow:
    return TransferRow(
        reference,
        HOLDERS[0].email,
        key,
        "completed",
        None,
        1000,
        "NGN",
        1000,
        HOLDERS[0].wallet_number,
        HOLDERS[1].wallet_number,
        1,
    )


def _observed(rows: list[TransferRow], balances: tuple[int, int]) -> Observation:
    wallets = {h.wallet_number: ("NGN", b) for h, b in zip(HOLDERS, balances, strict=True)}
    return Observation(rows, wallets, {r.reference: 1 for r in rows}, [], 0.0, 0)


def test_consistent_history_passes() -> None:
    recorder = Recorder()
    recorder.add(_accepted("k1", "T1"))
    verdict = judge(recorder, HOLDERS, _observed([_row("k1", "T1")], (99_000, 101_000)), {})
    assert verdict.ok, verdict.violations


def test_money_from_nothing_is_a_violation() -> None:
    recorder = Recorder()
    recorder.add(_accepted("k1", "T1"))
    verdict = judge(recorder, HOLDERS, _observed([_row("k1", "T1")], (99_000, 102_000)), {})
    assert verdict.money_delta == {"NGN": 1000}
    assert not verdict.ok


def test_one_key_answered_with_two_references_is_applied_twice() -> None:
    recorder = Recorder()
    recorder.add(_accepted("k1", "T1"))
    recorder.raced.append(_accepted("k1", "T2"))
    rows = [_row("k1", "T1")]
    verdict = judge(recorder, HOLDERS, _observed(rows, (99_000, 101_000)), {})
    assert verdict.applied_twice == 1
    assert verdict.lost == 1  # T2 was promised and does not exist
    assert not verdict.ok


def test_accepted_but_missing_is_lost_and_status_must_agree() -> None:
    recorder = Recorder()
    recorder.add(_accepted("k1", "T1"))
    verdict = judge(recorder, HOLDERS, _observed([], (100_000, 100_000)), {"T1": None})
    assert verdict.lost == 1
    told_pending = judge(
        recorder, HOLDERS, _observed([_row("k1", "T1")], (99_000, 101_000)), {"T1": "pending"}
    )
    assert told_pending.status_mismatches == 1


WITH_DESTINATIONS = [
    Holder(h.email, h.wallet_number, h.currency, h.funding_minor, (("pays", 7), ("fails", 8)))
    for h in HOLDERS
]


def _asked(operation: str, path: str, body: dict[str, object], key: str, ref: str) -> Intent:
    intent = Intent(0, operation, 0, path, body, key)
    intent.attempts.append(Attempt(1.0, 0.1, AttemptResult.ACCEPTED, 201, None, ref))
    return intent


def _deposit(key: str, reference: str, status: str) -> DepositRow:
    charge = "success" if status == "success" else "failed"
    return DepositRow(
        reference, HOLDERS[0].email, key, status, 5000, "NGN", HOLDERS[0].wallet_number, charge
    )


def _withdrawal(key: str, reference: str, status: str, last4: str) -> WithdrawalRow:
    return WithdrawalRow(
        reference, HOLDERS[0].email, key, status, None, 3000, "NGN", HOLDERS[0].wallet_number, last4
    )


def _payments_observed(
    deposits: list[DepositRow],
    withdrawals: list[WithdrawalRow],
    entries: dict[str, int],
    balance: int,
) -> Observation:
    wallets = {
        HOLDERS[0].wallet_number: ("NGN", balance),
        HOLDERS[1].wallet_number: ("NGN", 100_000),
    }
    return Observation([], wallets, {}, [], 0.0, 0, deposits, withdrawals, entries, len(deposits))


def _payments_recorder() -> Recorder:
    recorder = Recorder()
    recorder.add(_asked("deposit", "/api/v1/wallet/deposit", {"amount": "50.00"}, "d1", "dep-1"))
    recorder.add(_asked("deposit", "/api/v1/wallet/deposit", {"amount": "50.00"}, "d2", "dep-2"))
    withdraw = "/api/v1/wallet/withdraw"
    recorder.add(
        _asked("withdrawal", withdraw, {"amount": "30.00", "destination_id": 7}, "w1", "wd_1")
    )
    recorder.add(
        _asked("withdrawal", withdraw, {"amount": "30.00", "destination_id": 8}, "w2", "wd_2")
    )
    recorder.choices.update({"dep-1": True, "dep-2": False})
    return recorder


def test_deposits_enter_and_withdrawals_leave_or_come_back() -> None:
    """A credited deposit adds to the wallet, a declined one nothing; a paid withdrawal leaves,
    a failed one is debited and refunded once."""
    deposits = [_deposit("d1", "dep-1", "success"), _deposit("d2", "dep-2", "failed")]
    withdrawals = [
        _withdrawal("w1", "wd_1", "success", "1234"),
        _withdrawal("w2", "wd_2", "failed", "0000"),
    ]
    entries = {"dep-1": 1, "wd_1": 1, "wd_1.settled": 1, "wd_2": 1, "wd_2.refund": 1}
    seen = _payments_observed(deposits, withdrawals, entries, 100_000 + 5000 - 3000)
    verdict = judge(_payments_recorder(), WITH_DESTINATIONS, seen, {})
    assert verdict.ok, verdict.violations
    assert verdict.money_delta == {"NGN": 0}


def test_a_second_refund_or_credit_is_a_webhook_applied_twice() -> None:
    deposits = [_deposit("d1", "dep-1", "success"), _deposit("d2", "dep-2", "failed")]
    withdrawals = [
        _withdrawal("w1", "wd_1", "success", "1234"),
        _withdrawal("w2", "wd_2", "failed", "0000"),
    ]
    entries = {
        "dep-1": 2,
        "wd_1": 1,
        "wd_1.settled": 1,
        "wd_2": 1,
        "wd_2.refund": 1,
        "wd_2.reversal": 1,
    }
    seen = _payments_observed(deposits, withdrawals, entries, 100_000 + 10_000)
    verdict = judge(_payments_recorder(), WITH_DESTINATIONS, seen, {})
    assert verdict.webhooks_applied_twice == 2
    assert verdict.money_delta == {"NGN": 8000}
    assert not verdict.ok


def test_a_withdrawal_ending_against_its_rule_or_a_deposit_against_its_payer_is_flagged() -> None:
    deposits = [_deposit("d1", "dep-1", "failed"), _deposit("d2", "dep-2", "failed")]
    withdrawals = [
        _withdrawal("w1", "wd_1", "success", "1234"),
        _withdrawal("w2", "wd_2", "success", "0000"),
    ]
    entries = {"wd_1": 1, "wd_1.settled": 1, "wd_2": 1, "wd_2.settled": 1}
    seen = _payments_observed(deposits, withdrawals, entries, 100_000 - 6000)
    verdict = judge(_payments_recorder(), WITH_DESTINATIONS, seen, {})
    assert verdict.outcome_mismatches == 2
    assert verdict.money_delta == {"NGN": 0}
    assert not verdict.ok


def test_an_unhandled_error_in_the_logs_is_a_violation_named_by_route_and_cause(
    tmp_path: Path,
) -> None:
    unhandled = {
        "event": "http.unhandled_error",
        "error_type": "PendingRollbackError",
        "error_chain": ["sqlalchemy.exc.PendingRollbackError"],
        "raised_at": "transfers/batcher.py:120 _create",
        "method": "POST",
        "path": "/api/v1/wallet/transfer",
    }
    outage = {"event": "http.database_unavailable", "reason": "ConnectionRefusedError"}
    retry_later = {"event": "http.app_error", "code": "service_unavailable"}
    invariant = {"event": "http.app_error", "code": "ledger_invariant_error"}
    lines = (unhandled, outage, retry_later, invariant, unhandled)
    (tmp_path / "serve.log").write_text(
        "INFO:     started\n" + "\n".join(json.dumps(r) for r in lines)
    )
    (tmp_path / "worker-0.log").write_text('{"event": "jobs.retry_scheduled"}\n{not json\n')

    found = unhandled_errors(tmp_path)

    assert found == Counter(
        {
            "serve.log: POST /api/v1/wallet/transfer: sqlalchemy.exc.PendingRollbackError"
            " (at transfers/batcher.py:120 _create)": 2,
            "serve.log: ?: http.app_error ledger_invariant_error": 1,
        }
    )
    recorder = Recorder()
    recorder.add(_accepted("k1", "T1"))
    verdict = judge(recorder, HOLDERS, _observed([_row("k1", "T1")], (99_000, 101_000)), {})
    verdict.unhandled_errors = found
    assert verdict.violations["unhandled errors in the process logs"] == 3
    assert not verdict.ok
