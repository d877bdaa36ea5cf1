"""The `coffer` command line, run as a real subprocess against a fresh database per test.

Each subprocess costs about a second, so tests set up their users and funds in-process and
call the CLI only for the behaviour under test.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from coffer.db import Database
from coffer.identity.service import create_user
from coffer.migrate import head_revision
from coffer.wallets.numbers import is_valid_wallet_number
from tests.fixtures.factories import fund, make_user

CLI_TIMEOUT_SECONDS = 300
"""Eight `--help` processes import coffer at once: minutes at a load of 25 on two cores."""
HELP_VERBS = (
    ("serve",),
    ("worker",),
    ("migrate",),
    ("users", "create"),
    ("users", "reset-2fa"),
    ("keys", "expire"),
    ("wallets", "credit"),
    ("wallets", "debit"),
    ("ledger", "verify"),
    ("check", "bank"),
)
_BALANCE = re.compile(r"balance=(\S+) NGN")


def _env(database_url: str) -> dict[str, str]:
    # Wide, plain help output; the test profile (fast password hashing) comes from conftest.
    return {
        **os.environ,
        "COFFER_DATABASE_URL": database_url,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "coffer", *args]


def coffer(
    database_url: str, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(args),
        env=_env(database_url),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def adjust(
    database_url: str,
    cwd: Path,
    verb: str,
    wallet_number: str,
    amount: str,
    *,
    reference: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`coffer wallets credit|debit` with a reason (and a reference, when given)."""
    args = ["wallets", verb, "--wallet", wallet_number, "--amount", amount, "--reason", "test"]
    if reference is not None:
        args += ["--reference", reference]
    return coffer(database_url, cwd, *args)


def _printed_balance(result: subprocess.CompletedProcess[str]) -> str:
    match = _BALANCE.search(result.stdout)
    assert match, result.stdout
    return match.group(1)


async def _fetch(database_url: str, sql: str, **params: Any) -> list[Any]:
    database = Database(database_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            return list((await connection.execute(text(sql), params)).all())
    finally:
        await database.dispose()


def fetch(database_url: str, sql: str, **params: Any) -> list[Any]:
    return asyncio.run(_fetch(database_url, sql, **params))


def execute(database_url: str, sql: str, **params: Any) -> None:
    async def run() -> None:
        database = Database(database_url, pool_size=1)
        try:
            async with database.engine.begin() as connection:
                await connection.execute(text(sql), params)
        finally:
            await database.dispose()

    asyncio.run(run())


def wallet_balance(database_url: str, wallet_number: str) -> int:
    rows = fetch(
        database_url,
        "SELECT balance FROM ledger_accounts WHERE code = :code",
        code=f"wallet:{wallet_number}",
    )
    assert len(rows) == 1
    return int(rows[0][0])


def make_wallet(database_url: str, *, funded_minor: int = 0) -> str:
    """A new user's primary NGN wallet number, created in-process (through the services)."""

    async def run() -> str:
        database = Database(database_url, pool_size=1)
        try:
            async with database.transaction() as session:
                created = await make_user(session)
                if funded_minor:
                    await fund(session, created.primary_wallet, funded_minor)
            return created.primary_wallet.number
        finally:
            await database.dispose()

    return asyncio.run(run())


def with_wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@pytest.fixture
def db_url(backend: str, fresh_database_url: Callable[..., str]) -> str:
    """A fresh, migrated database of this backend, for one test's subprocesses."""
    return fresh_database_url()


def test_every_verb_answers_help(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'unused.db'}")
    processes = {
        verb: subprocess.Popen(
            _command([*verb, "--help"]),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verb in HELP_VERBS
    }
    for verb, process in processes.items():
        stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_SECONDS)
        assert process.returncode == 0, (verb, stderr)
        assert "Usage:" in stdout, verb
    assert not (tmp_path / "unused.db").exists()


def test_migrate_brings_an_empty_database_to_head(
    backend: str, fresh_database_url: Callable[..., str], tmp_path: Path
) -> None:
    url = fresh_database_url(migrate=False)

    result = coffer(url, tmp_path, "migrate")

    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    assert fetch(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]


def test_users_create_prints_the_user_id_and_a_valid_wallet_number(
    db_url: str, tmp_path: Path
) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"

    result = coffer(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        email,
        "--password-stdin",
        stdin="correct horse 1\n",
    )

    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"user_id=(\S+) wallet_number=(\d+)\n", result.stdout)
    assert match, result.stdout
    user_id, wallet_number = uuid.UUID(match.group(1)), match.group(2)
    assert len(wallet_number) == 13
    assert is_valid_wallet_number(wallet_number)
    rows = fetch(
        db_url,
        "SELECT u.id, w.number, w.is_primary FROM users u JOIN wallets w ON w.user_id = u.id "
        "WHERE u.email = :email",
        email=email,
    )
    assert [(uuid.UUID(str(id_)), number, bool(primary)) for id_, number, primary in rows] == [
        (user_id, wallet_number, True)
    ]


def test_users_create_refuses_a_duplicate_email(db_url: str, tmp_path: Path) -> None:
    email = f"taken-{uuid.uuid4().hex[:8]}@example.com"

    async def existing_user() -> None:
        database = Database(db_url, pool_size=1)
        try:
            async with database.transaction() as session:
                await create_user(session, email=email, password=None, currency="NGN")
        finally:
            await database.dispose()

    asyncio.run(existing_user())

    result = coffer(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        email.upper(),
        "--password-stdin",
        stdin="long enough 1\n",
    )

    assert result.returncode == 1
    assert "user_exists" in result.stderr
    assert fetch(db_url, "SELECT COUNT(*) FROM users") == [(1,)]


def test_users_create_refuses_a_weak_password(db_url: str, tmp_path: Path) -> None:
    result = coffer(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "weak@example.com",
        "--password-stdin",
        stdin="short\n",
    )

    assert result.returncode == 1
    assert "weak_password" in result.stderr
    assert "short" not in result.stderr.replace("weak_password", "")
    assert fetch(db_url, "SELECT COUNT(*) FROM users") == [(0,)]


def test_users_create_takes_no_password_argument(db_url: str, tmp_path: Path) -> None:
    # Arguments are visible to every local user (ps, /proc/<pid>/cmdline).
    result = coffer(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "argv@example.com",
        "--password",
        "correct horse 1",
    )

    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert fetch(db_url, "SELECT COUNT(*) FROM users") == [(0,)]


def test_credit_then_debit_change_the_balance_as_printed(db_url: str, tmp_path: Path) -> None:
    number = make_wallet(db_url)

    credited = adjust(db_url, tmp_path, "credit", number, "10.00")
    assert credited.returncode == 0, credited.stderr
    assert _printed_balance(credited) == "10.00"

    debited = adjust(db_url, tmp_path, "debit", number, "2.50")
    assert debited.returncode == 0, debited.stderr
    assert _printed_balance(debited) == "7.50"
    assert wallet_balance(db_url, number) == 750


def test_debit_beyond_the_balance_fails_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    number = make_wallet(db_url, funded_minor=500)
    entries_before = fetch(db_url, "SELECT COUNT(*) FROM ledger_entries")

    result = adjust(db_url, tmp_path, "debit", number, "5.01")

    assert result.returncode == 1
    assert "insufficient_funds" in result.stderr
    assert wallet_balance(db_url, number) == 500
    assert fetch(db_url, "SELECT COUNT(*) FROM ledger_entries") == entries_before


def test_a_repeated_reference_applies_once(db_url: str, tmp_path: Path) -> None:
    number = make_wallet(db_url)

    first = adjust(db_url, tmp_path, "credit", number, "3.00", reference="ticket-1234")
    second = adjust(db_url, tmp_path, "credit", number, "3.00", reference="ticket-1234")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "already applied" not in first.stdout
    assert "already applied" in second.stdout
    assert _printed_balance(first) == _printed_balance(second) == "3.00"
    assert wallet_balance(db_url, number) == 300
    assert fetch(db_url, "SELECT COUNT(*) FROM ledger_entries WHERE reference = 'ticket-1234'") == [
        (1,)
    ]


def test_a_mistyped_wallet_number_is_refused(db_url: str, tmp_path: Path) -> None:
    number = make_wallet(db_url)
    mistyped = with_wrong_check_digit(number)
    assert not is_valid_wallet_number(mistyped)

    result = adjust(db_url, tmp_path, "credit", mistyped, "1.00")

    assert result.returncode == 1
    assert "invalid_wallet_number" in result.stderr
    assert wallet_balance(db_url, number) == 0


def test_ledger_verify_passes_on_a_healthy_database(db_url: str, tmp_path: Path) -> None:
    make_wallet(db_url, funded_minor=12_345)

    result = coffer(db_url, tmp_path, "ledger", "verify")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("ok ") for line in lines), result.stdout


def test_ledger_verify_fails_after_a_balance_is_altered_behind_its_back(
    db_url: str, tmp_path: Path
) -> None:
    number = make_wallet(db_url, funded_minor=1_000)
    execute(
        db_url,
        "UPDATE ledger_accounts SET balance = balance + 100 WHERE code = :code",
        code=f"wallet:{number}",
    )

    result = coffer(db_url, tmp_path, "ledger", "verify")

    assert result.returncode == 1
    failed = {line.split()[1].rstrip(":") for line in result.stdout.splitlines() if "FAIL" in line}
    assert "balances_match_postings" in failed
    assert "entries_balance" not in failed


def test_jobs_dead_lists_a_dead_job_and_jobs_retry_queues_it_again(
    db_url: str, tmp_path: Path
) -> None:
    execute(
        db_url,
        "INSERT INTO outbox_jobs (name, payload, status, run_at, attempts, last_error, created_at)"
        " VALUES ('notifications.send_email', '{}', 'dead', :now, 10, 'SMTPError: refused', :now)",
        now=datetime.now(UTC),
    )
    [(job_id,)] = fetch(db_url, "SELECT id FROM outbox_jobs")

    listed = coffer(db_url, tmp_path, "jobs", "dead")
    retried = coffer(db_url, tmp_path, "jobs", "retry", str(job_id))

    assert listed.returncode == 0, listed.stderr
    assert f"{job_id}  notifications.send_email  attempts=10" in listed.stdout
    assert "error=SMTPError: refused" in listed.stdout
    assert retried.returncode == 0, retried.stderr
    assert fetch(db_url, "SELECT status, attempts FROM outbox_jobs") == [("pending", 0)]
