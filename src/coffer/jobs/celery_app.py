"""The Celery application of the scaled mode: `celery -A coffer.jobs.celery_app worker|beat`.

Every catalogue job is a Celery task of the same name whose one argument is its outbox row id;
the outbox stays the only way work is enqueued (the relay publishes rows after commit, beat's
schedules enqueue rows). Tasks acknowledge late, are requeued when their worker is lost, and
each worker process takes one message at a time. Job code is async: each worker process runs
it on one event loop with one database engine, made after the fork (`worker_process_init`).
No result backend: outcomes live in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from celery import Celery, Task
from celery.signals import beat_init, worker_process_init, worker_process_shutdown

from coffer.db import Database
from coffer.jobs import catalogue
from coffer.jobs.delivery import deliver
from coffer.jobs.outbox import enqueue
from coffer.jobs.relay import Relay
from coffer.kit.clock import set_offset
from coffer.kit.heap import settle_heap
from coffer.logging import configure_logging
from coffer.notifications.hub import CommitNudger
from coffer.settings import Settings, get_settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

ENQUEUE_SCHEDULED_TASK = "coffer.enqueue_scheduled"
SWEEP_OUTBOX_TASK = "coffer.sweep_outbox"
BROKER_CONNECT_TIMEOUT_SECONDS = 2
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
"""Publishing gives up within about a second (the relay keeps the row for the sweeper)."""
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
"""Redis redelivers an unacknowledged message after this; above the longest retry countdown."""


def _beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {
        f"enqueue {schedule.name}": {
            "task": ENQUEUE_SCHEDULED_TASK,
            "schedule": schedule.interval,
            "args": (schedule.name,),
            # A tick nobody took in time is dropped: the next one does the same work.
            "options": {"expires": schedule.interval.total_seconds()},
        }
        for schedule in catalogue.schedules(settings)
    }
    sweep = timedelta(seconds=settings.outbox_sweep_interval_seconds)
    entries["sweep the outbox"] = {
        "task": SWEEP_OUTBOX_TASK,
        "schedule": sweep,
        "options": {"expires": sweep.total_seconds()},
    }
    return entries


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings: publishing only, until tasks are registered on it."""
    celery = Celery("coffer", broker=settings.broker_url, set_as_current=False)
    celery.conf.update(
        task_default_queue=settings.celery_queue,
        # A worker consumes both unless told otherwise: the first lane's queue (the transfer
        # processor, coffer.jobs.catalogue.celery_queue) and the main one.
        task_queues={catalogue.first_lane_queue(settings): {}, settings.celery_queue: {}},
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_SECONDS,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        beat_schedule=_beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
    )
    return celery


@dataclass
class WorkerProcess:
    """The event loop, database and relay of one worker process."""

    settings: Settings
    loop: asyncio.AbstractEventLoop
    database: Database
    relay: Relay
    nudger: CommitNudger
    """Wakes the API processes' websockets after a job commits events."""

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run job code, then let any publish its commits started finish."""

        async def then_publish() -> T:
            try:
                return await work
            finally:
                await self.relay.idle()
                await self.nudger.idle()

        return self.loop.run_until_complete(then_publish())


_process: WorkerProcess | None = None


def worker_process() -> WorkerProcess:
    """This process's loop and engine, made on first use (a solo or threaded pool sends no
    `worker_process_init`)."""
    global _process
    if _process is None:
        settings = get_settings()
        configure_logging(settings.log_level, json=settings.log_json)
        set_offset(timedelta(seconds=settings.clock_offset_seconds))
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        relay = Relay(database, settings, app)
        database.jobs_committed_listeners.append(relay.wake)
        nudger = CommitNudger(settings.redis_url)
        nudger.install()
        _process = WorkerProcess(settings, loop, database, relay, nudger)
        settle_heap()
    return _process


def _start_process(**_: Any) -> None:
    worker_process()


def _stop_process(**_: Any) -> None:
    global _process
    if _process is not None:
        _process.loop.run_until_complete(_process.database.dispose())
        _process.loop.close()
        _process = None


def _enqueue_every_schedule_now(sender: Any, **_: Any) -> None:
    """Beat's first ticks come an interval after it starts; like the database runner, start
    with every schedule due, so a deployment that was down refreshes rates at once."""
    for schedule in catalogue.schedules(get_settings()):
        sender.app.send_task(ENQUEUE_SCHEDULED_TASK, args=(schedule.name,))


def _run_job(task: Task, job_id: int) -> None:
    process = worker_process()
    countdown = process.run(deliver(process.database, process.settings, job_id))
    if countdown is not None:
        raise task.retry(countdown=countdown)


def _enqueue_scheduled(name: str) -> None:
    process = worker_process()

    async def work() -> None:
        async with process.database.transaction() as session:
            await enqueue(session, name, dedupe_key=name)

    process.run(work())


def _sweep_outbox() -> None:
    process = worker_process()
    published = process.run(process.relay.publish_due())
    if published:
        log.info("outbox.swept", published=published)


def _register(celery: Celery) -> None:
    for job in catalogue.all_jobs():
        celery.task(name=job.name, bind=True, max_retries=None)(_run_job)
    celery.task(name=ENQUEUE_SCHEDULED_TASK)(_enqueue_scheduled)
    celery.task(name=SWEEP_OUTBOX_TASK)(_sweep_outbox)


worker_process_init.connect(_start_process)
worker_process_shutdown.connect(_stop_process)
beat_init.connect(_enqueue_every_schedule_now)
app = make_celery(get_settings())
_register(app)
