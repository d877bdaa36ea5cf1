"""The one source of "now", always timezone-aware UTC.

Tests that need time to pass (an API key expiring in a running server) shift the clock with
`set_offset` instead of waiting. The app and the CLI set it from COFFER_CLOCK_OFFSET_SECONDS,
which settings refuse unless COFFER_ENV=test, so production always runs on the real clock.
Shift backwards, then forwards to zero: a token minted under a clock ahead of the real one
carries an `iat` in the future, which PyJWT refuses against the real clock.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC) + _offset


def set_offset(offset: timedelta) -> None:
    """Shift `utcnow` by `offset` for this process (zero restores the real clock)."""
    global _offset
    _offset = offset


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later, clamped to the month's last day
    (31 January + 1 month = 28 or 29 February)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
