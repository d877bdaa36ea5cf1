"""A private PostgreSQL cluster in a temporary folder, on a free port of 127.0.0.1.

The checker restarts and slows its database on purpose, so it must own one: it never touches
the machine's server. initdb and postgres refuse to run as root, so under root every server
command runs as the `postgres` OS user (`runuser -u postgres --`), which owns the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SERVER_START_TIMEOUT_SECONDS = 180
"""pg_ctl's wait for start and restart; a loaded machine replays WAL slowly."""
SUPERUSER = "coffer"
DATABASE = "coffer"
SERVER_OS_USER = "postgres"


class ClusterError(RuntimeError):
    """The private cluster could not be made, started or restarted."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def find_bindir() -> Path:
    """The machine's PostgreSQL server binaries: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin holding initdb."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    candidates.extend(Path(p) for p in versions)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise ClusterError(
        "no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql)"
    )


class Cluster:
    """initdb, start, restart (fast or immediate), stop and remove one private cluster."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="coffer-check-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_server_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SERVER_OS_USER)
            except KeyError as error:
                raise ClusterError(
                    f"running as root needs a {SERVER_OS_USER!r} OS user for initdb"
                ) from error
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_server_user = ["runuser", "-u", SERVER_OS_USER, "--"]
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _server(self, *arguments: str, timeout_seconds: float | None = None) -> None:
        command = [*self._as_server_user, *arguments]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=timeout_seconds
            )
        except subprocess.TimeoutExpired as error:
            raise ClusterError(f"{Path(arguments[0]).name} timed out") from error
        if result.returncode != 0:
            raise ClusterError(f"{Path(arguments[0]).name} failed: {result.stderr.strip()[-500:]}")

    def _pg_ctl(self, *arguments: str) -> None:
        self._server(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(SERVER_START_TIMEOUT_SECONDS),
            *arguments,
            timeout_seconds=SERVER_START_TIMEOUT_SECONDS + 30,
        )

    def create(self) -> None:
        """initdb (trust auth, one superuser), then start on 127.0.0.1 only, socket in the
        temporary folder, and create the coffer database."""
        self._server(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
            timeout_seconds=SERVER_START_TIMEOUT_SECONDS,
        )
        options = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "100",
            "shared_buffers": "64MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in options.items())
        self.start()
        self._server(
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"CREATE DATABASE {DATABASE}",
            timeout_seconds=SERVER_START_TIMEOUT_SECONDS,
        )

    def start(self) -> None:
        self._pg_ctl("start")
        self.started = True

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast|immediate`: immediate is a crash, recovered from the WAL."""
        self._pg_ctl("-m", mode, "restart")

    def psql_command(self, sql: str) -> list[str]:
        """A psql invocation running `sql` on the coffer database (for the slow-db fault)."""
        return [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            DATABASE,
            "-c",
            sql,
        ]

    def destroy(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove the folder."""
        if self.started:
            try:
                self._server(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                    timeout_seconds=60,
                )
            except ClusterError:
                pid_file = self.data / "postmaster.pid"
                if pid_file.exists():
                    _kill_quietly(int(pid_file.read_text().split("\n", 1)[0]))
                    time.sleep(1)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        return
