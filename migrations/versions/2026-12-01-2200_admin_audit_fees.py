"""Admin control (issue 15): the hash-chained audit log, monthly fees, limit overrides and
email notification preferences.

Seeds the audit chain head, so the first append has a row to lock.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("subject_user_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    op.create_index(
        op.f("ix_audit_events_subject_user_id_id"), "audit_events", ["subject_user_id", "id"]
    )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "last_event_id": 0, "last_hash": GENESIS_HASH}])
    op.create_table(
        "wallet_fees",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("wallet_id", BIG_ID, nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_fees_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_fees")),
        sa.UniqueConstraint("wallet_id", "period", name=op.f("uq_wallet_fees_wallet_id_period")),
    )
    op.create_index(op.f("ix_wallet_fees_status_wallet_id"), "wallet_fees", ["status", "wallet_id"])
    op.create_table(
        "limit_overrides",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_limit_overrides_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", "currency", name=op.f("pk_limit_overrides")),
    )
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("activity_emails", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_preferences")),
    )
    op.create_table(
        "sent_notifications",
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dedupe_key", name=op.f("pk_sent_notifications")),
    )


def downgrade() -> None:
    op.drop_table("sent_notifications")
    op.drop_table("notification_preferences")
    op.drop_table("limit_overrides")
    op.drop_index(op.f("ix_wallet_fees_status_wallet_id"), table_name="wallet_fees")
    op.drop_table("wallet_fees")
    op.drop_table("audit_chain_head")
    op.drop_index(op.f("ix_audit_events_subject_user_id_id"), table_name="audit_events")
    op.drop_table("audit_events")
