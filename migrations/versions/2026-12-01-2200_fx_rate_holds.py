"""Distrusted FX input (issue 12): fetched rates that jumped are held for an operator, and open
quotes are counted per user through an index.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fx_rate_holds",
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("base_currency", "currency", name=op.f("pk_fx_rate_holds")),
    )
    with op.batch_alter_table("fx_quotes", schema=None) as batch_op:
        batch_op.create_index("ix_fx_quotes_user_id_expires_at", ["user_id", "expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("fx_quotes", schema=None) as batch_op:
        batch_op.drop_index("ix_fx_quotes_user_id_expires_at")
    op.drop_table("fx_rate_holds")
