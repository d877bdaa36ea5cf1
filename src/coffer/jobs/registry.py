"""The job registry: names (`<domain>.<verb>`) mapped to idempotent async functions.

A job function receives the worker's `Database`, the settings and the job's JSON payload, and
opens its own units of work, so a long job can commit in steps (the transfer processor commits
per batch). A job that must also run when no event announces work declares its schedule in
the decorator; the embedded runner and Celery beat both read it from here. The registry imports
no domain: `coffer.jobs.catalogue` imports them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from coffer.db import Database
from coffer.settings import Settings

JobFunction = Callable[[Database, Settings, dict[str, Any]], Awaitable[None]]
Interval = Callable[[Settings], timedelta]


class Lane(StrEnum):
    """Which jobs a job waits behind. A queue of one kind of work must never delay another."""

    FIRST = "first"
    """Settles money inside the database (the transfer processor): run beside the others, one
    claim at a time, and carried on a Celery queue of its own, so a flood of notifications (two
    emails per settled transfer) never holds up a transfer."""
    IN_LINE = "in_line"
    """Everything else, oldest first."""
    APART = "apart"
    """Waits on the outside world (a webhook receiver): run beside the others, a few at a
    time, so a slow receiver never holds up the rest."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    function: JobFunction
    every: Interval | None
    """How often the job is enqueued with no event asking for it (a sweeper), if ever."""
    lane: Lane = Lane.IN_LINE


_JOBS: dict[str, Job] = {}


def job(
    name: str, *, every: Interval | None = None, lane: Lane = Lane.IN_LINE
) -> Callable[[JobFunction], JobFunction]:
    """Register `function` as the job `name`, enqueued every `every(settings)` when given."""

    def register(function: JobFunction) -> JobFunction:
        if name in _JOBS:
            raise ValueError(f"job {name!r} is registered twice")
        _JOBS[name] = Job(name, function, every, lane)
        return function

    return register


def registered_jobs() -> list[Job]:
    """Every job registered so far (import `coffer.jobs.catalogue` first to have them all)."""
    return list(_JOBS.values())


def find_job(name: str) -> Job | None:
    return _JOBS.get(name)
