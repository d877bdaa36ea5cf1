"""The job registry: names (`<domain>.<verb>`) mapped to idempotent async functions.

A job function receives the runner's `Database` and the job's JSON payload, and opens its own
units of work, so a long job can commit in steps (the transfer processor commits per batch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from coffer.db import Database
from coffer.settings import Settings

JobFunction = Callable[[Database, Settings, dict[str, Any]], Awaitable[None]]

_JOBS: dict[str, JobFunction] = {}


def job(name: str) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        if name in _JOBS:
            raise ValueError(f"job {name!r} is registered twice")
        _JOBS[name] = function
        return function

    return register


def get_job(name: str) -> JobFunction | None:
    load_jobs()
    return _JOBS.get(name)


def load_jobs() -> None:
    """Import every domain's tasks module so its jobs register themselves."""
    import coffer.fees.tasks
    import coffer.fx.tasks
    import coffer.idempotency.tasks
    import coffer.notifications.tasks
    import coffer.transfers.tasks  # noqa: F401
