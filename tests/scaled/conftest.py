"""Scaled-mode tests: PostgreSQL, a real broker and real Celery worker processes. Each module
names its broker (`broker_url`) and gets its own database and queue; the in-process API of the
HTTP fixtures publishes to that broker and runs no jobs itself."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from coffer.settings import Settings
from tests.fixtures.databases import PostgresDatabases
from tests.fixtures.scaled import (
    Process,
    redis_server,
    scaled_environment,
    start_worker,
    unique_queue,
)

__all__ = ["redis_server"]

LIMIT_OUT_OF_THE_WAY = Decimal("100000000")


@pytest.fixture(scope="module")
def scaled_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.fixture(scope="module")
def queue(request: pytest.FixtureRequest) -> str:
    return unique_queue(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def worker_environment(scaled_url: str, broker_url: str, queue: str) -> dict[str, str]:
    return scaled_environment(scaled_url, broker_url, queue)


@pytest.fixture
def app_settings(scaled_url: str, broker_url: str, queue: str) -> Settings:
    return Settings(
        database_url=scaled_url,
        broker_url=broker_url,
        celery_queue=queue,
        database_pool_size=3,
        daily_transfer_limit=LIMIT_OUT_OF_THE_WAY,
    )


class Workers:
    """The module's worker processes: started when a test needs one, all stopped at the end."""

    def __init__(self, environment: dict[str, str], directory: Path) -> None:
        self.environment = environment
        self.directory = directory
        self.running: list[Process] = []

    def start(self, *, beat: bool = True, **extra: str) -> Process:
        process = start_worker({**self.environment, **extra}, self.directory, beat=beat)
        self.running.append(process)
        return process

    def shared(self) -> Process:
        """The module's one long-lived worker, started on first use."""
        alive = [process for process in self.running if process.popen.poll() is None]
        return alive[0] if alive else self.start()

    def stop_all(self) -> None:
        for process in self.running:
            if process.popen.poll() is None:
                process.stop()
        self.running.clear()


@pytest.fixture(scope="module")
def workers(
    worker_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    started = Workers(worker_environment, tmp_path_factory.mktemp("workers"))
    yield started
    started.stop_all()
