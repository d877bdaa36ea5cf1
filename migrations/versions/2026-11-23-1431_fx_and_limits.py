"""Multi-currency: FX rates and quotes, cross-currency transfers, daily limits (issue 4).

Seeds `fx_fixed_rates` and the rate cache with indicative rates against USD, so embedded mode
converts (and converts the USD daily limits) out of the box. They are placeholders, not market
rates: set real ones with `coffer fx set-rate`, or use COFFER_FX_PROVIDER=exchangerate_api
(whose cache rows replace these; rows of another provider are never used). The seeded cache
rows go stale after COFFER_FX_MAX_AGE_SECONDS unless the `fx.refresh_rates` job runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:31:00+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECIMAL_TEXT = sa.String(length=40)
# Units per 1 USD, indicative only (late 2025).
PLACEHOLDER_RATES_PER_USD = {
    "USD": "1",
    "NGN": "1500",
    "EUR": "0.92",
    "GBP": "0.79",
    "KZT": "500",
    "KES": "129",
    "GHS": "12",
    "ZAR": "18",
    "CAD": "1.38",
    "JPY": "150",
    "KWD": "0.307",
}


def upgrade() -> None:
    fixed_rates = op.create_table(
        "fx_fixed_rates",
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", DECIMAL_TEXT, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("base_currency", "currency", name=op.f("pk_fx_fixed_rates")),
    )
    rates = op.create_table(
        "fx_rates",
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", DECIMAL_TEXT, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("base_currency", "currency", name=op.f("pk_fx_rates")),
    )
    op.create_table(
        "daily_limit_usage",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used_minor", sa.BigInteger(), nullable=False),
        sa.Column("limit_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "used_minor >= 0 AND used_minor <= limit_minor",
            name=op.f("ck_daily_limit_usage_within_limit"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_daily_limit_usage_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "user_id", "kind", "currency", "day", name=op.f("pk_daily_limit_usage")
        ),
    )
    op.create_table(
        "fx_quotes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("from_currency", sa.String(length=3), nullable=False),
        sa.Column("to_currency", sa.String(length=3), nullable=False),
        sa.Column("rate", DECIMAL_TEXT, nullable=False),
        sa.Column("send_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("receive_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_fx_quotes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_quotes")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receive_amount_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("receive_currency", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("fx_rate", DECIMAL_TEXT, nullable=True))
        batch_op.add_column(sa.Column("fee_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("quote_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("limit_day", sa.Date(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_transfers_quote_id"), ["quote_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_transfers_quote_id_fx_quotes"), "fx_quotes", ["quote_id"], ["id"]
        )

    now = datetime.now(UTC)
    op.bulk_insert(
        fixed_rates,
        [
            {"base_currency": "USD", "currency": code, "rate": rate, "updated_at": now}
            for code, rate in PLACEHOLDER_RATES_PER_USD.items()
        ],
    )
    op.bulk_insert(
        rates,
        [
            {
                "base_currency": "USD",
                "currency": code,
                "rate": rate,
                "source": "fixed",
                "published_at": now,
                "fetched_at": now,
            }
            for code, rate in PLACEHOLDER_RATES_PER_USD.items()
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_transfers_quote_id_fx_quotes"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_transfers_quote_id"), type_="unique")
        batch_op.drop_column("limit_day")
        batch_op.drop_column("quote_id")
        batch_op.drop_column("fee_minor")
        batch_op.drop_column("fx_rate")
        batch_op.drop_column("receive_currency")
        batch_op.drop_column("receive_amount_minor")

    op.drop_table("fx_quotes")
    op.drop_table("daily_limit_usage")
    op.drop_table("fx_rates")
    op.drop_table("fx_fixed_rates")
