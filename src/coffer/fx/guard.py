"""Distrust of fetched rates: a provider (or whoever answers in its place) that reports a rate
far from the cached one is not believed until an operator confirms it. The cached rate keeps
serving meanwhile, and goes stale (refusing conversions) if nobody acts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import structlog

BPS = Decimal(10_000)
log = structlog.get_logger(__name__)


def jump_bps(cached: Decimal, fetched: Decimal) -> Decimal:
    return abs(fetched - cached) / cached * BPS


def split_by_jump(
    rows: Sequence[dict[str, Any]], cached: Mapping[str, Decimal], max_jump_bps: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows to cache, rows to hold): held are those more than `max_jump_bps` from the cache."""
    accepted: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for row in rows:
        previous = cached.get(row["currency"])
        if previous is not None and jump_bps(previous, row["rate"]) > max_jump_bps:
            log.warning(
                "fx.rate_jump_refused",
                currency=row["currency"],
                cached_rate=format(previous, "f"),
                fetched_rate=format(row["rate"], "f"),
                jump_bps=int(jump_bps(previous, row["rate"])),
                max_jump_bps=max_jump_bps,
            )
            held.append(row)
        else:
            accepted.append(row)
    return accepted, held
