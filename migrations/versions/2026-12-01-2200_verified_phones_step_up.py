"""Verified phones and emails, step-up sessions, capped code sends (issue 12).

`users.phone` from now on holds only numbers proven by an SMS code; claims wait in the new
`users.pending_phone` (not unique, so a false claim blocks nobody), new addresses asked for on
/me in `users.pending_email`. Existing phones were never verified, so they move to
`pending_phone`: until their owners verify them (`POST /me/phone`), sign-in and transfers by
phone no longer find them. Downgrading puts each pending number back where it was when no
verified number holds it.

`auth_sessions.stepped_up_at` records the last fresh proof (password or TOTP) of a session, for
the sensitive actions that need one. `one_time_codes` counts how often a code was (re)sent in
its window, so resending cannot hand out unlimited guesses. `api_keys.rolled_over_at` makes a
rollover happen once per expired key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("pending_phone", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("pending_email", sa.String(length=320), nullable=True))
    op.execute("UPDATE users SET pending_phone = phone, phone = NULL WHERE phone IS NOT NULL")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("stepped_up_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("one_time_codes") as batch:
        batch.add_column(sa.Column("send_count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE one_time_codes SET window_started_at = created_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("rolled_over_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("rolled_over_at")
    with op.batch_alter_table("one_time_codes") as batch:
        batch.drop_column("window_started_at")
        batch.drop_column("send_count")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("stepped_up_at")
    op.execute(
        "UPDATE users SET phone = pending_phone WHERE phone IS NULL AND pending_phone IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM users AS holder WHERE holder.phone = users.pending_phone)"
        " AND NOT EXISTS (SELECT 1 FROM users AS other"
        " WHERE other.pending_phone = users.pending_phone AND other.id <> users.id)"
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("pending_email")
        batch.drop_column("pending_phone")
