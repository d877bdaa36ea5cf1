"""`make run-scaled`: the scaled shape on one machine, for development and demonstration.

Against the machine's PostgreSQL and broker (COFFER_DATABASE_URL, COFFER_BROKER_URL, localhost
defaults): migrate, then 2 API processes, 2 Celery workers, beat and Flower on 127.0.0.1:5555,
each line prefixed with its process's name. One Ctrl-C stops them all; so does any of them
exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from coffer.migrate import upgrade_to_head

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/coffer"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
STOP_GRACE_SECONDS = 15
CELERY = [sys.executable, "-m", "celery", "-A", "coffer.jobs.celery_app"]


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    argv: list[str]


def parts(api_port: int, flower_port: int, beat_schedule: str) -> list[Part]:
    coffer = [sys.executable, "-m", "coffer"]
    return [
        Part("api", [*coffer, "serve", "--port", str(api_port), "--workers", "2"]),
        *(
            Part(
                f"worker{n}",
                [
                    *CELERY,
                    "worker",
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"worker{n}@%h",
                    "--loglevel",
                    "INFO",
                ],
            )
            for n in (1, 2)
        ),
        Part("beat", [*CELERY, "beat", "--schedule", beat_schedule, "--loglevel", "INFO"]),
        Part("flower", [*CELERY, "flower", "--address=127.0.0.1", f"--port={flower_port}"]),
    ]


async def _create_database_if_missing(url: str) -> None:
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgres") or not parsed.database:
        return
    server = parsed.set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await connection.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await connection.close()


def _relay_output(name: str, width: int, stream: object) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode(errors="replace").rstrip()
        sys.stdout.write(f"{name:<{width}} | {line}\n")
        sys.stdout.flush()


def run(selected: Sequence[Part], environment: dict[str, str]) -> int:
    width = max(len(part.name) for part in selected)
    children: list[tuple[Part, subprocess.Popen[bytes]]] = []
    for part in selected:
        # Own process group: the terminal's Ctrl-C reaches only us, and we stop them in order.
        child = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            part.argv,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(
            target=_relay_output, args=(part.name, width, child.stdout), daemon=True
        ).start()
        children.append((part, child))
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    exit_code = 0
    while not stopping.wait(0.5):
        ended = [(part, child) for part, child in children if child.poll() is not None]
        if ended:
            part, child = ended[0]
            print(f"{part.name} exited with {child.returncode}: stopping everything")
            exit_code = 1
            break
    for _, child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for _, child in children:
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return exit_code


def main() -> None:
    arguments = argparse.ArgumentParser(description="Run the scaled shape on this machine.")
    arguments.add_argument("--api-port", type=int, default=8000)
    arguments.add_argument("--flower-port", type=int, default=5555)
    options = arguments.parse_args()
    environment = {
        **os.environ,
        "COFFER_DATABASE_URL": os.environ.get("COFFER_DATABASE_URL", DEFAULT_DATABASE_URL),
        "COFFER_BROKER_URL": os.environ.get("COFFER_BROKER_URL", DEFAULT_BROKER_URL),
        # Rate limits and the websockets' wake-ups across the API processes.
        "COFFER_REDIS_URL": os.environ.get("COFFER_REDIS_URL", DEFAULT_REDIS_URL),
        "COFFER_LOG_JSON": os.environ.get("COFFER_LOG_JSON", "false"),
        "PYTHONUNBUFFERED": "1",
    }
    database_url = environment["COFFER_DATABASE_URL"]
    asyncio.run(_create_database_if_missing(database_url))
    upgrade_to_head(database_url)
    beat_schedule = os.path.join(tempfile.gettempdir(), "coffer-run-scaled-beat")
    print(
        f"coffer scaled: API http://127.0.0.1:{options.api_port}, "
        f"Flower http://127.0.0.1:{options.flower_port}; Ctrl-C stops everything"
    )
    sys.exit(run(parts(options.api_port, options.flower_port, beat_schedule), environment))


if __name__ == "__main__":
    main()
