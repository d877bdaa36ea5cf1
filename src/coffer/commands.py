"""What every CLI command shares: running one piece of async work against the configured
database, with domain errors reported as `error: <code>: <message>` and exit status 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import typer

from coffer.db import Database
from coffer.errors import AppError
from coffer.kit.clock import set_offset
from coffer.settings import Settings, get_settings

T = TypeVar("T")


def run_async(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run one piece of async work against the configured database; domain errors exit 1."""
    settings = get_settings()
    set_offset(timedelta(seconds=settings.clock_offset_seconds))

    async def main() -> T:
        database = Database(settings.database_url, pool_size=2)
        try:
            return await work(database, settings)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except AppError as error:
        typer.echo(f"error: {error.code}: {error.message}", err=True)
        raise typer.Exit(1) from error
