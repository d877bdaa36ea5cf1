"""Create the core tables: users, ledger, wallets, history, transfers, outbox.

Ledger entries and postings are append-only (invariant 5): triggers refuse UPDATE and DELETE
(and TRUNCATE on PostgreSQL), so a mistake can only be fixed by a reversing entry.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 14:14:23.647784+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY, so big ids are INTEGER there.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

APPEND_ONLY_TABLES = ("ledger_entries", "ledger_postings")


def _create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
        return
    for table in APPEND_ONLY_TABLES:
        for verb in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END"
            )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION ledger_refuse_change()")
        return
    for table in APPEND_ONLY_TABLES:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=True),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "(allow_negative AND balance IS NULL) OR (NOT allow_negative AND balance >= 0)",
            name=op.f("ck_ledger_accounts_balance_rule"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column(
            "metadata",
            JSON_DOCUMENT,
            nullable=False,
        ),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("reference", name=op.f("uq_ledger_entries_reference")),
    )
    op.create_table(
        "outbox_jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            JSON_DOCUMENT,
            nullable=False,
        ),
        sa.Column("dedupe_key", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_at", TIMESTAMP, nullable=False),
        sa.Column("locked_until", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_jobs_dedupe_key")),
    )
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_jobs_status_run_at"), ["status", "run_at"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("phone", name=op.f("uq_users_phone")),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("entry_id", BIG_ID, nullable=False),
        sa.Column("account_id", BIG_ID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_postings_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_postings_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_postings")),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_postings_account_id_id"), ["account_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ledger_postings_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "wallets",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("number", sa.String(length=13), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column(
            "ledger_account_id",
            BIG_ID,
            nullable=False,
        ),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_wallets_ledger_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_wallets_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("ledger_account_id", name=op.f("uq_wallets_ledger_account_id")),
        sa.UniqueConstraint("number", name=op.f("uq_wallets_number")),
        sa.UniqueConstraint("user_id", "currency", name=op.f("uq_wallets_user_id_currency")),
    )
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.create_index(
            "uq_wallets_primary_per_user",
            ["user_id"],
            unique=True,
            postgresql_where=sa.text("is_primary"),
            sqlite_where=sa.text("is_primary"),
        )

    op.create_table(
        "transactions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("wallet_id", BIG_ID, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("counterparty_wallet_number", sa.String(length=13), nullable=True),
        sa.Column("counterparty_name", sa.String(length=201), nullable=True),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column(
            "metadata",
            JSON_DOCUMENT,
            nullable=False,
        ),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_transactions_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint(
            "wallet_id", "type", "reference", name=op.f("uq_transactions_wallet_id_type_reference")
        ),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transactions_wallet_id_id"), ["wallet_id", "id"], unique=False
        )

    op.create_table(
        "transfers",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("sender_user_id", sa.Uuid(), nullable=False),
        sa.Column("sender_wallet_id", BIG_ID, nullable=False),
        sa.Column(
            "recipient_wallet_id",
            BIG_ID,
            nullable=False,
        ),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("narration", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("settled_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_wallet_id"],
            ["wallets.id"],
            name=op.f("fk_transfers_recipient_wallet_id_wallets"),
        ),
        sa.ForeignKeyConstraint(
            ["sender_user_id"], ["users.id"], name=op.f("fk_transfers_sender_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["sender_wallet_id"], ["wallets.id"], name=op.f("fk_transfers_sender_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("reference", name=op.f("uq_transfers_reference")),
        sa.UniqueConstraint(
            "sender_user_id",
            "idempotency_key",
            name=op.f("uq_transfers_sender_user_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transfers_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_transfers_pending",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.drop_table("transfers")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transactions_wallet_id_id"))

    op.drop_table("transactions")
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_wallets_primary_per_user",
            postgresql_where=sa.text("is_primary"),
            sqlite_where=sa.text("is_primary"),
        )

    op.drop_table("wallets")
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_postings_entry_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_postings_account_id_id"))

    op.drop_table("ledger_postings")
    op.drop_table("users")
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_jobs_status_run_at"))

    op.drop_table("outbox_jobs")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
