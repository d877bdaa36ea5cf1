"""Payments (issue 11): deposits, withdrawals, the webhook inbox, saved cards, payout
destinations, and the sandbox provider's state. Account numbers and card authorizations are
stored encrypted, with the id of the key beside each ciphertext.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:42:04.030317+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_charges",
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("authorization_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_sandbox_charges")),
    )
    op.create_table(
        "sandbox_payouts",
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("transfer_code", sa.String(length=64), nullable=False),
        sa.Column("recipient_code", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_sandbox_payouts")),
        sa.UniqueConstraint("transfer_code", name=op.f("uq_sandbox_payouts_transfer_code")),
    )
    op.create_table(
        "sandbox_recipients",
        sa.Column("recipient_code", sa.String(length=64), nullable=False),
        sa.Column("account_suffix", sa.String(length=4), nullable=False),
        sa.PrimaryKeyConstraint("recipient_code", name=op.f("pk_sandbox_recipients")),
    )
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint(
            "provider", "event_key", name=op.f("uq_webhook_inbox_provider_event_key")
        ),
    )
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_inbox_outcome_received_at"),
            ["outcome", "received_at"],
            unique=False,
        )

    op.create_table(
        "payout_destinations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bank_code", sa.String(length=32), nullable=False),
        sa.Column("bank_name", sa.String(length=128), nullable=False),
        sa.Column("account_name", sa.String(length=201), nullable=False),
        sa.Column("account_number_sealed", sa.String(length=512), nullable=False),
        sa.Column("encryption_key_id", sa.String(length=64), nullable=False),
        sa.Column("account_last4", sa.String(length=4), nullable=False),
        sa.Column("account_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recipient_code", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payout_destinations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_destinations")),
    )
    with op.batch_alter_table("payout_destinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payout_destinations_user_id"), ["user_id"], unique=False
        )
        batch_op.create_index(
            "uq_payout_destinations_live_account",
            ["user_id", "provider", "account_fingerprint"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "saved_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("authorization_sealed", sa.String(length=512), nullable=False),
        sa.Column("encryption_key_id", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("brand", sa.String(length=32), nullable=False),
        sa.Column("exp_month", sa.String(length=2), nullable=False),
        sa.Column("exp_year", sa.String(length=4), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_saved_cards_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_cards")),
        sa.UniqueConstraint(
            "user_id",
            "provider",
            "signature",
            name=op.f("uq_saved_cards_user_id_provider_signature"),
        ),
    )
    with op.batch_alter_table("saved_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_saved_cards_user_id"), ["user_id"], unique=False)

    op.create_table(
        "deposits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_reference", sa.String(length=128), nullable=True),
        sa.Column("authorization_url", sa.String(length=2048), nullable=True),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column(
            "saved_card_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["saved_card_id"],
            ["saved_cards.id"],
            name=op.f("fk_deposits_saved_card_id_saved_cards"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_deposits_user_id_users")),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_deposits_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
        sa.UniqueConstraint("reference", name=op.f("uq_deposits_reference")),
        sa.UniqueConstraint(
            "user_id", "idempotency_key", name=op.f("uq_deposits_user_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deposits_status_created_at"), ["status", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deposits_user_id"), ["user_id"], unique=False)

    op.create_table(
        "withdrawals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "destination_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("narration", sa.String(length=100), nullable=True),
        sa.Column("transfer_code", sa.String(length=128), nullable=True),
        sa.Column("failure_reason", sa.String(length=64), nullable=True),
        sa.Column("limit_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["payout_destinations.id"],
            name=op.f("fk_withdrawals_destination_id_payout_destinations"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_withdrawals_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_withdrawals_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("reference", name=op.f("uq_withdrawals_reference")),
    )
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_withdrawals_status_updated_at"), ["status", "updated_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_withdrawals_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawals_user_id"))
        batch_op.drop_index(batch_op.f("ix_withdrawals_status_updated_at"))

    op.drop_table("withdrawals")
    with op.batch_alter_table("deposits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deposits_user_id"))
        batch_op.drop_index(batch_op.f("ix_deposits_status_created_at"))

    op.drop_table("deposits")
    with op.batch_alter_table("saved_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_cards_user_id"))

    op.drop_table("saved_cards")
    with op.batch_alter_table("payout_destinations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_payout_destinations_live_account",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_payout_destinations_user_id"))

    op.drop_table("payout_destinations")
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_inbox_outcome_received_at"))

    op.drop_table("webhook_inbox")
    op.drop_table("sandbox_recipients")
    op.drop_table("sandbox_payouts")
    op.drop_table("sandbox_charges")
