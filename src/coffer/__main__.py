"""The `coffer` command line: serve, worker, migrate, users, wallets, ledger."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
import uvicorn

from coffer.admin.cli import admin_app, audit_app
from coffer.commands import run_async as _run
from coffer.db import Database
from coffer.fx import service as fx
from coffer.fx.repository import all_cached_rates
from coffer.fx.tasks import refresh_rates
from coffer.identity.service import create_user, set_active
from coffer.jobs.runner import JobRunner
from coffer.kit.money import parse_amount
from coffer.ledger.verify import verify_ledger
from coffer.logging import configure_logging
from coffer.migrate import upgrade_to_head
from coffer.models import Role
from coffer.settings import FxProviderName, Settings, get_settings
from coffer.wallets import service as wallets

app = typer.Typer(help="coffer: wallets and a double-entry payments ledger.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
wallets_app = typer.Typer(help="Operator adjustments to wallets.", no_args_is_help=True)
ledger_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
fx_app = typer.Typer(help="Exchange rates.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(wallets_app, name="wallets")
app.add_typer(ledger_app, name="ledger")
app.add_typer(fx_app, name="fx")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")

WORKER_HEALTHCHECK_TIMEOUT_SECONDS = 60


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Serve the HTTP API (migrating first when the database is SQLite)."""
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        upgrade_to_head(settings.database_url)
    uvicorn.run(
        "coffer.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # A worker still importing on a busy machine misses uvicorn's 5 s ping and is killed
        # and respawned, over and over: give startup and a loaded event loop time to answer.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT_SECONDS,
    )


@app.command()
def worker() -> None:
    """Run background jobs (the transfer processor, notifications) in this process."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    async def work(database: Database, settings: Settings) -> None:
        await JobRunner(database, settings).run_forever()

    _run(work)


@app.command()
def migrate() -> None:
    """Apply every pending database migration (Alembic upgrade head)."""
    upgrade_to_head(get_settings().database_url)
    typer.echo("database at head")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address (sign-in name).")],
    password: Annotated[str, typer.Option(help="At least 10 characters.")],
    phone: Annotated[str | None, typer.Option(help="Phone number with country code.")] = None,
    name: Annotated[str | None, typer.Option(help="Full name: first and last.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
) -> None:
    """Create an active, verified user with a primary wallet; prints the user id and wallet
    number."""
    first, _, last = (name or "").strip().partition(" ")

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
