"""The `coffer` command line: serve, worker, beat, migrate, users, keys, wallets, ledger, fx,
payments, jobs, check."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
import uvicorn

from coffer.admin.cli import admin_app, audit_app
from coffer.apikeys import service as apikeys
from coffer.check import FAULTS
from coffer.commands import run_async as _run
from coffer.db import Database
from coffer.errors import NotFound
from coffer.fx import service as fx
from coffer.fx.repository import all_cached_rates
from coffer.fx.tasks import refresh_rates
from coffer.identity import repository as identity_repository
from coffer.identity.service import create_user, normalize_email, reset_two_factor, set_active
from coffer.identity.totp import reseal_secrets
from coffer.jobs import repository as jobs_repository
from coffer.jobs.celery_app import app as celery
from coffer.jobs.celery_app import make_celery
from coffer.jobs.relay import Relay
from coffer.jobs.runner import JobRunner
from coffer.kit.heap import settle_heap
from coffer.kit.money import parse_amount
from coffer.ledger.verify import verify_ledger
from coffer.logging import configure_logging
from coffer.metrics.endpoints import MULTIPROCESS_DIRECTORY
from coffer.migrate import upgrade_to_head
from coffer.models import Role
from coffer.notifications.hub import CommitNudger
from coffer.payments import repository as payments_repository
from coffer.payments.providers.registry import providers_for
from coffer.payments.reconciliation import reconcile
from coffer.payments.rotation import reseal_batch
from coffer.settings import FxProviderName, Settings, get_settings
from coffer.supervisor import use_prompt_replacement
from coffer.wallets import service as wallets
from coffer.webhooks.service import reseal_secrets as reseal_webhook_secrets

app = typer.Typer(help="coffer: wallets and a double-entry payments ledger.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
wallets_app = typer.Typer(help="Operator adjustments to wallets.", no_args_is_help=True)
ledger_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys and encryption keys.", no_args_is_help=True)
fx_app = typer.Typer(help="Exchange rates.", no_args_is_help=True)
payments_app = typer.Typer(help="Deposits and withdrawals in doubt.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs an operator must look at.", no_args_is_help=True)
check_app = typer.Typer(help="Check coffer's guarantees under faults.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(wallets_app, name="wallets")
app.add_typer(ledger_app, name="ledger")
app.add_typer(fx_app, name="fx")
app.add_typer(payments_app, name="payments")
app.add_typer(jobs_app, name="jobs")
app.add_typer(check_app, name="check")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")


WORKER_HEALTHCHECK_TIMEOUT_SECONDS = 60
WS_MAX_MESSAGE_BYTES = 16 * 1024
"""Largest websocket message a client may send (the authenticate message is far smaller)."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Serve the HTTP API (migrating first when the database is SQLite)."""
    settings = get_settings()
    # In the supervisor too, so a worker's death and its respawn are logged.
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.database_url.startswith("sqlite"):
        upgrade_to_head(settings.database_url)
    use_prompt_replacement()
    if workers > 1 and MULTIPROCESS_DIRECTORY not in os.environ:
        # Set before the workers start and import prometheus_client: /metrics of any of them
        # then reports all of them.
        os.environ[MULTIPROCESS_DIRECTORY] = tempfile.mkdtemp(prefix="coffer-metrics-")
    uvicorn.run(
        "coffer.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # The websocket (GET /api/v1/ws): the sans-I/O implementation of `websockets` and no
        # per-message compression, whose zlib state would cost ~100 KiB per idle socket;
        # client messages are a small authenticate message at most.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # A worker still importing on a busy machine misses uvicorn's 5 s ping and is killed
        # and respawned, over and over: give startup and a loaded event loop time to answer.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_SECONDS,
    )


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Celery worker processes (default: one per CPU).")
    ] = None,
) -> None:
    """Run background jobs: a Celery worker when COFFER_BROKER_URL is set, else the database
    runner (the transfer processor, notifications) in this process."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.broker_url is not None:
        options = ["--concurrency", str(concurrency)] if concurrency else []
        celery.start(["worker", f"--loglevel={settings.log_level}", *options])
        return

    async def work(database: Database, settings: Settings) -> None:
        # Wakes the API processes' websockets (through Redis) when a job commits events.
        nudger = CommitNudger(settings.redis_url)
        nudger.install()
        runner = JobRunner(database, settings)
        settle_heap()
        try:
            await runner.run_forever()
        finally:
            await nudger.close()

    _run(work)


@app.command()
def beat() -> None:
    """Run Celery beat: enqueue the scheduled jobs and sweep the outbox (scaled mode only; the
    database runner keeps its own schedules). Run exactly one."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.broker_url is None:
        typer.echo(
            "error: COFFER_BROKER_URL is not set; without a broker `coffer worker` schedules jobs",
            err=True,
        )
        raise typer.Exit(2)
    schedule_file = f"{tempfile.gettempdir()}/coffer-beat-{settings.celery_queue}"
    celery.start(["beat", f"--loglevel={settings.log_level}", "--schedule", schedule_file])


@app.command()
def migrate() -> None:
    """Apply every pending database migration (Alembic upgrade head)."""
    upgrade_to_head(get_settings().database_url)
    typer.echo("database at head")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address (sign-in name).")],
    phone: Annotated[str | None, typer.Option(help="Phone number with country code.")] = None,
    name: Annotated[str | None, typer.Option(help="Full name: first and last.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
) -> None:
    """Create an active, verified user with a primary wallet; prints the user id and wallet
    number. The password (at least 10 characters) is prompted for, or read from standard input
    with --password-stdin; never an argument, which other users see in the process list."""
    first, _, last = (name or "").strip().partition(" ")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def work(database: Database, settings: Settings) -> tuple[str, str]:
        async with database.transaction() as session:
            created = await create_user(
                session,
                email=email,
                password=password,
                phone=phone,
                first_name=first or None,
                last_name=last.strip() or None,
                role=Role.ADMIN if admin else Role.USER,
                currency=settings.default_currency,
                settings=settings,
            )
        return str(created.user.id), created.primary_wallet.number

    user_id, wallet_number = _run(work)
    typer.echo(f"user_id={user_id} wallet_number={wallet_number}")


@users_app.command("reactivate")
def users_reactivate(
    email: Annotated[str, typer.Option(help="Email address of the deactivated user.")],
) -> None:
    """Let a deactivated user sign in again (their old sessions stay ended)."""

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            user = await set_active(session, email, active=True)
        return str(user.id)

    typer.echo(f"user_id={_run(work)} active")


@users_app.command("reset-2fa")
def users_reset_two_factor(
    email: Annotated[str, typer.Option(help="Email address of the user.")],
) -> None:
    """Turn off a user's 2FA (lost device, or an authenticator an attacker enrolled): every
    session ends and the user is emailed."""

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            user = await identity_repository.get_by_email(session, normalize_email(email))
            if user is None:
                raise NotFound("No user has this email")
            await reset_two_factor(session, user.id, settings=settings)
        return str(user.id)

    typer.echo(f"user_id={_run(work)} two_factor=off")


@keys_app.command("expire")
def keys_expire(
    key_id: Annotated[uuid.UUID, typer.Argument(help="The API key's id.")],
) -> None:
    """Expire an API key now: it stops working at once; its owner may roll it over."""

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            key = await apikeys.expire(session, key_id)
        return key.expires_at.isoformat()

    typer.echo(f"key_id={key_id} expires_at={_run(work)}")


def _adjust(
    wallet_number: str, amount: str, reason: str, reference: str | None, credit: bool
) -> None:
    if not reason.strip():
        typer.echo("error: a reason is required", err=True)
        raise typer.Exit(2)

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            wallet = await wallets.find_wallet(session, wallet_number)
            money = parse_amount(amount, wallet.currency, max_minor=settings.max_amount_minor)
            entry = await wallets.adjust(
                session,
                wallet,
                money,
                reason=reason,
                credit=credit,
                actor="cli",
                reference=reference,
            )
            balance = await wallets.balance(session, wallet)
        replayed = " (already applied)" if entry.replayed else ""
        return (
            f"entry={entry.entry_id}{replayed} balance={balance.format()} {balance.currency.code}"
        )

    typer.echo(_run(work))


WalletNumberOption = Annotated[str, typer.Option("--wallet", help="13-digit wallet number.")]
AmountOption = Annotated[str, typer.Option(help='Amount in major units, e.g. "10.00".')]
ReasonOption = Annotated[str, typer.Option(help="Why; kept in the entry's metadata.")]
ReferenceOption = Annotated[
    str | None, typer.Option(help="Idempotency reference: repeating it applies once.")
]


@wallets_app.command("credit")
def wallets_credit(
    wallet: WalletNumberOption,
    amount: AmountOption,
    reason: ReasonOption,
    reference: ReferenceOption = None,
) -> None:
    """Credit a wallet from system:adjustments:<ccy>."""
    _adjust(wallet, amount, reason, reference, credit=True)


@wallets_app.command("debit")
def wallets_debit(
    wallet: WalletNumberOption,
    amount: AmountOption,
    reason: ReasonOption,
    reference: ReferenceOption = None,
) -> None:
    """Debit a wallet into system:adjustments:<ccy>; refused if the balance cannot cover it."""
    _adjust(wallet, amount, reason, reference, credit=False)


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check every ledger invariant; exits 1 on any violation."""

    async def work(database: Database, settings: Settings) -> list[tuple[str, bool, str]]:
        async with database.transaction() as session:
            checks = await verify_ledger(session)
        return [(c.name, c.ok, c.detail) for c in checks]

    results = _run(work)
    for name, ok, detail in results:
        typer.echo(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@fx_app.command("set-rate")
def fx_set_rate(
    currency: Annotated[str, typer.Option(help="ISO 4217 code, e.g. NGN.")],
    rate: Annotated[str, typer.Option(help="Units of CURRENCY per 1 COFFER_FX_BASE_CURRENCY.")],
) -> None:
    """Set a rate of the `fixed` provider; with that provider active, the cache takes it at once."""
    try:
        value = Decimal(rate.strip())
    except InvalidOperation:
        typer.echo("error: the rate must be a decimal number such as 1500.25", err=True)
        raise typer.Exit(2) from None

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            await fx.set_fixed_rate(session, settings.fx_base_currency, currency, value)
        if settings.fx_provider is FxProviderName.FIXED:
            await refresh_rates(database, settings)
            return "rate set and cached"
        return f"rate set (used when COFFER_FX_PROVIDER=fixed; now {settings.fx_provider})"

    typer.echo(_run(work))


@fx_app.command("refresh")
def fx_refresh() -> None:
    """Refresh the rate cache from the configured provider now (as the fx.refresh_rates job)."""

    async def work(database: Database, settings: Settings) -> int:
        return await refresh_rates(database, settings)

    typer.echo(f"rates cached: {_run(work)}")


@fx_app.command("confirm-rate")
def fx_confirm_rate(
    currency: Annotated[str, typer.Option(help="ISO 4217 code of the held rate, e.g. NGN.")],
) -> None:
    """Believe a fetched rate that was held for jumping past COFFER_FX_MAX_JUMP_BPS."""

    async def work(database: Database, settings: Settings) -> Decimal:
        async with database.transaction() as session:
            return await fx.confirm_held_rate(session, settings.fx_base_currency, currency)

    rate = format(_run(work), "f")
    typer.echo(
        f"rate confirmed and cached: 1 {get_settings().fx_base_currency} = {rate} {currency}"
    )


@fx_app.command("rates")
def fx_rates() -> None:
    """List the cached rates with their source and when they were last refreshed."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            rows = await all_cached_rates(session)
        return [
            f"1 {r.base_currency} = {format(r.rate, 'f')} {r.currency}  "
            f"source={r.source} fetched_at={r.fetched_at.isoformat()}"
            for r in rows
        ]

    for line in _run(work):
        typer.echo(line)


@payments_app.command("reconcile")
def payments_reconcile() -> None:
    """Verify deposits and withdrawals in doubt with their provider now (one pass of the
    payments.reconcile job)."""

    async def work(database: Database, settings: Settings) -> str:
        report = await reconcile(database, settings, providers_for(database, settings))
        return " ".join(f"{name}={value}" for name, value in asdict(report).items())

    typer.echo(_run(work))


@payments_app.command("review")
def payments_review(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows to show.")] = 50,
) -> None:
    """List verified webhook events that need an operator (amount mismatch, unknown
    reference, a payout that succeeded after its refund), newest first."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            rows = await payments_repository.inbox_for_review(session, limit)
        return [
            f"{r.received_at.isoformat()} {r.provider} {r.event_type} key={r.event_key} "
            f"reason={r.reason}"
            for r in rows
        ]

    lines = _run(work)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("nothing to review")


@keys_app.command("rotate-encryption")
def keys_rotate_encryption() -> None:
    """Re-encrypt every encrypted column (TOTP secrets, saved cards, bank account numbers,
    webhook signing secrets) with the current data encryption key. Keep the old key configured
    until this finishes."""

    async def work(database: Database, settings: Settings) -> int:
        async with database.transaction() as session:
            total = await reseal_secrets(session, settings)
        while True:
            async with database.transaction() as session:
                changed = await reseal_batch(session, settings)
                changed += await reseal_webhook_secrets(session, settings)
            total += changed
            if not changed:
                return total

    typer.echo(f"re-encrypted: {_run(work)}")


@jobs_app.command("dead")
def jobs_dead(
    limit: Annotated[int, typer.Option(min=1, help="Rows to show at most.")] = 100,
) -> None:
    """List the jobs that failed every attempt, oldest first, with their last error."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            rows = await jobs_repository.dead_jobs(session, limit)
        return [
            f"{row.id}  {row.name}  attempts={row.attempts}"
            f"  created_at={row.created_at.isoformat()}  error={row.last_error}"
            for row in rows
        ]

    lines = _run(work)
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("no dead jobs")


@jobs_app.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The dead job's id.")]) -> None:
    """Give a dead job a fresh set of attempts, due now."""

    async def work(database: Database, settings: Settings) -> bool:
        async with database.transaction() as session:
            revived = await jobs_repository.revive(session, job_id)
        if revived and settings.broker_url is not None:
            await Relay(database, settings, make_celery(settings)).publish_due()
        return revived

    if not _run(work):
        typer.echo(f"error: no dead job has id {job_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"job {job_id} queued again")


@check_app.command("bank")
def check_bank(
    seconds: Annotated[float, typer.Option(min=5, max=86_400, help="Driving time.")] = 60,
    api_processes: Annotated[int, typer.Option(min=1, max=8, help="API processes.")] = 2,
    workers: Annotated[int, typer.Option(min=1, max=8, help="`coffer worker` processes.")] = 2,
    faults: Annotated[
        str,
        typer.Option(
            help="Comma-separated: kill-api, kill-worker, restart-db, drop-broker, slow-db."
        ),
    ] = ",".join(FAULTS),
    seed: Annotated[int, typer.Option(help="Same seed, same schedule and requests.")] = 1,
    clients: Annotated[int, typer.Option(min=1, max=64, help="Concurrent clients.")] = 4,
    broker: Annotated[
        bool,
        typer.Option(
            "--broker",
            help="Celery workers on a Redis of the checker's own (implied by drop-broker).",
        ),
    ] = False,
) -> None:
    """A Jepsen-style bank workload on a private PostgreSQL cluster under faults; exits 1 on
    any violation (money created or lost, a request applied twice, a broken invariant)."""
    chosen = tuple(name.strip() for name in faults.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(FAULTS))
    if unknown:
        typer.echo(f"error: unknown faults: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    # Imported here: the checker's machinery (clients, cluster, report) is no other verb's cost.
    from coffer.check.bank import BankConfig, run

    raise typer.Exit(
        run(BankConfig(seconds, api_processes, workers, chosen, seed, clients, broker))
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
