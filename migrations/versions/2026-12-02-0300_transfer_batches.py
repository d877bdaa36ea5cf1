"""Batch transfers (issue 13): `transfer_batches` records each POST /transfers/batch and its
items' outcomes; a linked batch's transfers carry its id and settle together.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transfer_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column(
            "items", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("group_status", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_transfer_batches_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_batches")),
        sa.UniqueConstraint("reference", name=op.f("uq_transfer_batches_reference")),
    )
    with op.batch_alter_table("transfer_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_batches_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "ix_transfer_batches_group_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("group_status = 'pending'"),
            sqlite_where=sa.text("group_status = 'pending'"),
        )
    op.add_column("transfers", sa.Column("linked_batch_id", sa.BigInteger(), nullable=True))
    op.create_index(
        op.f("ix_transfers_linked_batch_id"), "transfers", ["linked_batch_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_transfers_linked_batch_id"), table_name="transfers")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("linked_batch_id")
    with op.batch_alter_table("transfer_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_transfer_batches_group_pending")
        batch_op.drop_index(batch_op.f("ix_transfer_batches_user_id"))
    op.drop_table("transfer_batches")
