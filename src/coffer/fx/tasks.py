"""The rate refresh job: fetch a snapshot from the configured provider, store it in the cache."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from coffer.db import Database
from coffer.fx import service
from coffer.fx.providers import RateProvider, build_provider
from coffer.jobs.registry import job
from coffer.settings import FxProviderName, Settings

log = structlog.get_logger(__name__)


async def refresh_rates(
    database: Database, settings: Settings, provider: RateProvider | None = None
) -> int:
    """Refresh the cache; returns how many rates were stored. Provider failures raise
    `FxProviderError` with nothing written, and the cached rates age towards stale."""
    provider = provider or build_provider(settings, database)
    try:
        snapshot = await provider.fetch(settings.fx_base_currency)
    except service.FxProviderError as error:
        log.warning("fx.refresh_failed", provider=provider.name, reason=error.message)
        raise
    # The operator's own fixed rates are trusted; a fetched rate must not jump.
    fetched = provider.name != FxProviderName.FIXED
    async with database.transaction() as session:
        stored = await service.store_snapshot(
            session,
            snapshot,
            provider.name,
            max_jump_bps=settings.fx_max_jump_bps if fetched else None,
        )
        pruned = await service.prune_quotes(session)
    log.info("fx.rates_refreshed", provider=provider.name, rates=stored, quotes_pruned=pruned)
    return stored


@job(
    service.REFRESH_JOB,
    every=lambda settings: timedelta(seconds=settings.fx_refresh_interval_seconds),
)
async def run_refresh(database: Database, settings: Settings, payload: dict[str, Any]) -> None:
    await refresh_rates(database, settings)
