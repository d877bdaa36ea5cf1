"""A deep history in one wallet, written fast: the SQL bulk path the history benchmark uses.

Why not `wallets.adjust` a million times: at a few thousand entries a second that alone would
take longer than the rest of the benchmark. Instead one statement per chunk (PostgreSQL only)
writes what `wallets.adjust` writes for a credit, set-wise:

- `ledger_entries`: one `adjustment` entry per credit, reference `<prefix>-<n>`;
- `ledger_postings`: per entry, `system:adjustments:<ccy>` -amount (no running balance: it is an
  `allow_negative` account) and the wallet +amount with `balance_after` continuing the wallet's
  chain (its balance under `FOR UPDATE`, plus n times the amount, in posting id order);
- `transactions`: the wallet's `adjustment` history row per entry, pointing at it;
- the wallet account's running balance raised by the chunk's total, in the same statement.

So the five invariants hold by construction; the benchmark still runs `verify_ledger` over
everything at the end, which would catch a mistake here. Inserts only: the append-only triggers
on entries and postings stay on.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.engine import URL

from coffer.db import Database
from coffer.ledger import service as ledger
from coffer.models import TransactionStatus, TransactionType
from coffer.wallets.service import ADJUSTMENTS_PURPOSE
from ledger_throughput import CURRENCY

CHUNK = 250_000
"""Credits per statement (and transaction): big enough to be fast, small enough for the WAL."""
AMOUNT_MINOR = 100
_METADATA = json.dumps({"reason": "benchmark history", "actor": "bench", "direction": "credit"})

_SEED = text(
    """
WITH wallet AS (
  SELECT w.id AS wallet_id, a.id AS account_id, a.balance, a.currency
  FROM wallets w JOIN ledger_accounts a ON a.id = w.ledger_account_id
  WHERE w.number = :number
  FOR UPDATE OF a
), entries AS (
  INSERT INTO ledger_entries (kind, reference, metadata, created_at)
  SELECT 'adjustment', :prefix || '-' || g, CAST(:metadata AS JSONB), now()
  FROM generate_series(1, :count) AS g
  ORDER BY g
  RETURNING id, reference
), numbered AS (
  SELECT id, reference, row_number() OVER (ORDER BY id) AS n FROM entries
), postings AS (
  INSERT INTO ledger_postings (entry_id, account_id, amount, balance_after)
  SELECT e.id, p.account_id, p.amount, p.balance_after
  FROM numbered e
  CROSS JOIN wallet w
  CROSS JOIN LATERAL (VALUES
    (CAST(:system_account AS BIGINT), -CAST(:amount AS BIGINT), CAST(NULL AS BIGINT), 0),
    (w.account_id, CAST(:amount AS BIGINT), w.balance + e.n * :amount, 1)
  ) AS p(account_id, amount, balance_after, position)
  ORDER BY e.id, p.position
), history AS (
  INSERT INTO transactions
    (wallet_id, type, amount_minor, currency, status, reference, metadata, ledger_entry_id,
     created_at)
  SELECT w.wallet_id, :type, :amount, w.currency, :status, e.reference, CAST(:metadata AS JSONB),
         e.id, now()
  FROM numbered e CROSS JOIN wallet w
  ORDER BY e.id
)
UPDATE ledger_accounts SET balance = balance + CAST(:count AS BIGINT) * :amount
WHERE id = (SELECT account_id FROM wallet)
RETURNING balance
"""
)


async def seed_credits(url: URL, wallet_number: str, count: int) -> None:
    """Add `count` credits of 1.00 to the wallet's ledger account and history."""
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    prefix = f"bench-history-{uuid.uuid4().hex[:12]}"
    try:
        async with database.transaction() as session:
            system_account = await ledger.system_account(session, ADJUSTMENTS_PURPOSE, CURRENCY)
        done = 0
        while done < count:
            chunk = min(CHUNK, count - done)
            async with database.transaction() as session:
                result = await session.execute(
                    _SEED,
                    {
                        "number": wallet_number,
                        "prefix": f"{prefix}-{done}",
                        "metadata": _METADATA,
                        "count": chunk,
                        "system_account": system_account,
                        "amount": AMOUNT_MINOR,
                        "type": TransactionType.ADJUSTMENT.value,
                        "status": TransactionStatus.SUCCESS.value,
                    },
                )
                result.one()
            done += chunk
        async with database.transaction() as session:
            # Autovacuum would do this in production; a fresh bulk load has no statistics yet.
            await session.execute(text("ANALYZE ledger_entries, ledger_postings, transactions"))
    finally:
        await database.dispose()
