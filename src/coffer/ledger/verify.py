"""The five ledger invariants of DESIGN.md §4, checked on a live database.

Each check is one query that counts violations, so it runs the same on SQLite and PostgreSQL
and reads the whole ledger without loading it into memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.ledger.repository import is_postgres

APPEND_ONLY_TRIGGERS_POSTGRES = frozenset(
    {
        "ledger_entries_append_only",
        "ledger_postings_append_only",
        "ledger_entries_no_truncate",
        "ledger_postings_no_truncate",
    }
)
APPEND_ONLY_TRIGGERS_SQLITE = frozenset(
    {
        "ledger_entries_no_update",
        "ledger_entries_no_delete",
        "ledger_postings_no_update",
        "ledger_postings_no_delete",
    }
)

_UNBALANCED_ENTRIES = """
SELECT
  (SELECT COUNT(*) FROM (
     SELECT p.entry_id FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
     GROUP BY p.entry_id, a.currency HAVING SUM(p.amount) <> 0) AS unbalanced)
  + (SELECT COUNT(*) FROM ledger_entries e
     WHERE (SELECT COUNT(*) FROM ledger_postings p WHERE p.entry_id = e.id) < 2)
"""

_BALANCE_MISMATCHES = """
SELECT
  (SELECT COUNT(*) FROM ledger_accounts a
   WHERE NOT a.allow_negative AND (
     a.balance IS NULL
     OR a.balance <> COALESCE(
          (SELECT SUM(p.amount) FROM ledger_postings p WHERE p.account_id = a.id), 0)
     OR a.balance <> COALESCE(
          (SELECT p.balance_after FROM ledger_postings p WHERE p.account_id = a.id
           ORDER BY p.id DESC LIMIT 1), 0)))
  + (SELECT COUNT(*) FROM (
       SELECT p.amount, p.balance_after,
              LAG(p.balance_after, 1, 0) OVER (PARTITION BY p.account_id ORDER BY p.id) AS before
       FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
       WHERE NOT a.allow_negative) AS chain
     WHERE chain.balance_after IS NULL OR chain.balance_after <> chain.before + chain.amount)
  + (SELECT COUNT(*) FROM ledger_accounts a WHERE a.allow_negative AND (
       a.balance IS NOT NULL
       OR EXISTS (SELECT 1 FROM ledger_postings p
                  WHERE p.account_id = a.id AND p.balance_after IS NOT NULL)))
"""

_NEGATIVE_BALANCES = """
SELECT
  (SELECT COUNT(*) FROM ledger_accounts WHERE NOT allow_negative AND balance < 0)
  + (SELECT COUNT(*) FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
     WHERE NOT a.allow_negative AND p.balance_after < 0)
"""

_NONZERO_CURRENCIES = """
SELECT currency, SUM(balance) AS total FROM (
  SELECT a.currency,
         CASE WHEN a.allow_negative
              THEN (SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p
                    WHERE p.account_id = a.id)
              ELSE a.balance END AS balance
  FROM ledger_accounts a) AS balances
GROUP BY currency HAVING SUM(balance) <> 0
"""


@dataclass(frozen=True, slots=True)
class InvariantCheck:
    name: str
    violations: int
    detail: str

    @property
    def ok(self) -> bool:
        return self.violations == 0


async def _count(session: AsyncSession, sql: str) -> int:
    return int((await session.execute(text(sql))).scalar_one())


async def _missing_triggers(session: AsyncSession) -> set[str]:
    if is_postgres(session):
        expected = APPEND_ONLY_TRIGGERS_POSTGRES
        rows = await session.execute(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")
        )
    else:
        expected = APPEND_ONLY_TRIGGERS_SQLITE
        rows = await session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    return set(expected) - {row[0] for row in rows}


async def verify_ledger(session: AsyncSession) -> list[InvariantCheck]:
    """Run every invariant check; an empty violation count everywhere means a sound ledger."""
    unbalanced = await _count(session, _UNBALANCED_ENTRIES)
    mismatched = await _count(session, _BALANCE_MISMATCHES)
    negative = await _count(session, _NEGATIVE_BALANCES)
    currencies = (await session.execute(text(_NONZERO_CURRENCIES))).all()
    missing = await _missing_triggers(session)
    return [
        InvariantCheck(
            "entries_balance", unbalanced, "every entry's postings sum to zero per currency"
        ),
        InvariantCheck(
            "balances_match_postings",
            mismatched,
            "every balance equals the sum of its postings and its last balance_after",
        ),
        InvariantCheck("no_negative_wallets", negative, "no non-negative account below zero"),
        InvariantCheck(
            "currencies_sum_to_zero",
            len(currencies),
            "per currency, all balances sum to zero"
            + (f" (off: {', '.join(f'{c} {t}' for c, t in currencies)})" if currencies else ""),
        ),
        InvariantCheck(
            "append_only",
            len(missing),
            "entries and postings refuse UPDATE and DELETE"
            + (f" (missing triggers: {', '.join(sorted(missing))})" if missing else ""),
        ),
    ]
