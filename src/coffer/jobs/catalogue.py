"""The catalogue: importing it registers every domain's jobs. The one module that knows them
all, so the runner, Celery and the CLI never import a domain for its job names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import coffer.fees.tasks
import coffer.fx.tasks
import coffer.idempotency.tasks
import coffer.notifications.tasks
import coffer.payments.tasks
import coffer.transfers.tasks
import coffer.webhooks.tasks  # noqa: F401
from coffer.jobs.registry import Job, Lane, find_job, registered_jobs
from coffer.settings import Settings


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    interval: timedelta


def all_jobs() -> list[Job]:
    return registered_jobs()


def celery_queue(settings: Settings, name: str) -> str:
    """The Celery queue a job travels on: the first lane's own (workers consume both), so the
    transfer processor never waits behind a flood of other messages; the rest on the main one."""
    registered = find_job(name)
    if registered is not None and registered.lane is Lane.FIRST:
        return first_lane_queue(settings)
    return settings.celery_queue


def first_lane_queue(settings: Settings) -> str:
    return f"{settings.celery_queue}.first"


def schedules(settings: Settings) -> list[Schedule]:
    """The periodic jobs and their intervals under these settings, by name."""
    return sorted(
        (Schedule(job.name, job.every(settings)) for job in all_jobs() if job.every is not None),
        key=lambda schedule: schedule.name,
    )


__all__ = ["Schedule", "all_jobs", "celery_queue", "find_job", "first_lane_queue", "schedules"]
