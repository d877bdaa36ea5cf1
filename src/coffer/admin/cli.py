"""`coffer admin ...` and `coffer audit verify`: the admin API's verbs for an operator at the
server, through the same services (and so the same audit rows and emails). The actor recorded
is `cli:<os user>`."""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import datetime
from typing import Annotated

import typer

from coffer.admin import users, wallets
from coffer.admin.service import dead_jobs
from coffer.audit.service import events_page, verify_chain
from coffer.commands import run_async
from coffer.db import Database
from coffer.models import Role
from coffer.settings import Settings
from coffer.wallets.limits import LimitKind

admin_app = typer.Typer(help="Admin actions (audited, the user is emailed).", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
users_app = typer.Typer(help="Find and manage users.", no_args_is_help=True)
wallets_app = typer.Typer(help="Credit, debit, freeze and unfreeze wallets.", no_args_is_help=True)
admin_app.add_typer(users_app, name="users")
admin_app.add_typer(wallets_app, name="wallets")

UserOption = Annotated[uuid.UUID, typer.Option("--user", help="The user's id.")]
WalletOption = Annotated[str, typer.Option("--wallet", help="13-digit wallet number.")]
ReasonOption = Annotated[str, typer.Option(help="Why; kept in the audit log.")]
ReferenceOption = Annotated[
    str | None, typer.Option(help="Idempotency reference: repeating it applies once.")
]


def _actor() -> str:
    return f"cli:{getpass.getuser()}"[:64]


def _reason(reason: str) -> str:
    if len(reason.strip()) < 3:
        typer.echo("error: a reason of at least 3 characters is required", err=True)
        raise typer.Exit(2)
    return reason.strip()


@users_app.command("search")
def users_search(
    query: Annotated[str, typer.Argument(help="Email, phone, name or wallet number.")],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """List matching users: id, email, role, active."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            found, _ = await users.search(session, query, limit=limit, cursor=None)
        return [f"{u.id} {u.email} role={u.role} active={u.is_active}" for u in found]

    for line in run_async(work):
        typer.echo(line)


@users_app.command("show")
def users_show(user: UserOption) -> None:
    """A user's profile, wallets with balances, open sessions, keys and 2FA."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            found = await users.detail(session, user)
        lines = [
            f"user {found.user.id} {found.user.email} role={found.user.role} "
            f"active={found.user.is_active} two_factor={found.two_factor_enabled}"
        ]
        lines += [
            f"wallet {w.number} {w.currency} status={w.status} balance={b.format()}"
            for w, b in found.wallets
        ]
        lines.append(f"open sessions={len(found.sessions)} api keys={len(found.keys)}")
        return lines

    for line in run_async(work):
        typer.echo(line)


def _set_active(user: uuid.UUID, reason: str | None, *, active: bool) -> None:
    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            done = await users.set_active(
                session, user, active=active, actor=_actor(), reason=reason
            )
        return f"user_id={done.id} active={done.is_active}"

    typer.echo(run_async(work))


@users_app.command("activate")
def users_activate(user: UserOption, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Let a user sign in again."""
    _set_active(user, reason, active=True)


@users_app.command("deactivate")
def users_deactivate(user: UserOption, reason: ReasonOption) -> None:
    """Stop a user: every session and API key ends."""
    _set_active(user, _reason(reason), active=False)


@users_app.command("reset-2fa")
def users_reset_two_factor(user: UserOption, reason: ReasonOption) -> None:
    """Clear a user's 2FA and end every session and key (a stolen device)."""

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            done = await users.reset_two_factor_by_admin(
                session, settings, user, actor=_actor(), reason=_reason(reason)
            )
        return f"user_id={done.id} two_factor=off"

    typer.echo(run_async(work))


def _set_role(user: uuid.UUID, role: Role, reason: str) -> None:
    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            done = await users.set_role(session, user, role, actor=_actor(), reason=reason)
        return f"user_id={done.id} role={done.role}"

    typer.echo(run_async(work))


@users_app.command("grant-admin")
def users_grant_admin(user: UserOption, reason: ReasonOption) -> None:
    """Make a user an admin."""
    _set_role(user, Role.ADMIN, _reason(reason))


@users_app.command("revoke-admin")
def users_revoke_admin(user: UserOption, reason: ReasonOption) -> None:
    """Take the admin role (never the last active admin's)."""
    _set_role(user, Role.USER, _reason(reason))


@users_app.command("set-limit")
def users_set_limit(
    user: UserOption,
    kind: Annotated[LimitKind, typer.Option()],
    currency: Annotated[str, typer.Option()],
    limit: Annotated[str, typer.Option(help='Daily limit in major units, e.g. "500.00".')],
    expires_at: Annotated[datetime, typer.Option(help="UTC, e.g. 2027-01-01T00:00:00+00:00")],
    reason: ReasonOption,
) -> None:
    """Override a user's daily limit in one currency until an expiry."""

    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            done = await wallets.override_limit(
                session,
                user,
                kind=kind,
                currency=currency,
                raw_limit=limit,
                expires_at=expires_at,
                reason=_reason(reason),
                actor=_actor(),
            )
        return f"limit={done.format()} {done.currency.code} until {expires_at.isoformat()}"

    typer.echo(run_async(work))


def _adjust(wallet: str, amount: str, reason: str, reference: str | None, *, credit: bool) -> None:
    async def work(database: Database, settings: Settings) -> str:
        async with database.transaction() as session:
            done = await wallets.adjust(
                session,
                settings,
                wallet,
                amount,
                credit=credit,
                reason=_reason(reason),
                actor=_actor(),
                reference=reference,
            )
        replayed = " (already applied)" if done.entry.replayed else ""
        return (
            f"entry={done.entry.entry_id}{replayed} reference={done.entry.reference} "
            f"balance={done.balance.format()} {done.balance.currency.code}"
        )

    typer.echo(run_async(work))


AmountOption = Annotated[str, typer.Option(help='Amount in major units, e.g. "10.00".')]


@wallets_app.command("credit")
def wallets_credit(
    wallet: WalletOption,
    amount: AmountOption,
    reason: ReasonOption,
    reference: ReferenceOption = None,
) -> None:
    """Credit a wallet from system:adjustments:<ccy>."""
    _adjust(wallet, amount, reason, reference, credit=True)


@wallets_app.command("debit")
def wallets_debit(
    wallet: WalletOption,
    amount: AmountOption,
    reason: ReasonOption,
    reference: ReferenceOption = None,
) -> None:
    """Debit a wallet into system:adjustments:<ccy>; refused if the balance cannot cover it."""
    _adjust(wallet, amount, reason, reference, credit=False)


def _freeze(wallet: str, reason: str, *, frozen: bool) -> None:
    async def work(database: Database, settings: Settings) -> str:
        action = wallets.freeze if frozen else wallets.unfreeze
        async with database.transaction() as session:
            done = await action(session, settings, wallet, reason=_reason(reason), actor=_actor())
        return f"wallet={done.number} status={done.status}"

    typer.echo(run_async(work))


@wallets_app.command("freeze")
def wallets_freeze(wallet: WalletOption, reason: ReasonOption) -> None:
    """Stop every deposit, transfer and withdrawal, in or out."""
    _freeze(wallet, reason, frozen=True)


@wallets_app.command("unfreeze")
def wallets_unfreeze(wallet: WalletOption, reason: ReasonOption) -> None:
    """Let a frozen wallet move money again (blocked while fees are owed)."""
    _freeze(wallet, reason, frozen=False)


@admin_app.command("dead-jobs")
def admin_dead_jobs(limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """Jobs that gave up after their last attempt."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            rows, _ = await dead_jobs(session, limit=limit, cursor=None)
        return [f"{j.id} {j.name} attempts={j.attempts} error={j.last_error}" for j in rows]

    for line in run_async(work):
        typer.echo(line)


@audit_app.command("list")
def audit_list(
    user: Annotated[
        uuid.UUID | None, typer.Option("--user", help="Events about this user.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """The newest audit events, one JSON object a line."""

    async def work(database: Database, settings: Settings) -> list[str]:
        async with database.transaction() as session:
            rows, _ = await events_page(session, limit=limit, cursor=None, subject_user_id=user)
        return [
            json.dumps(
                {
                    "id": e.id,
                    "created_at": e.created_at.isoformat(),
                    "actor": e.actor,
                    "subject_user_id": str(e.subject_user_id) if e.subject_user_id else None,
                    "action": e.action,
                    "reason": e.reason,
                    "details": e.details,
                }
            )
            for e in rows
        ]

    for line in run_async(work):
        typer.echo(line)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exits 1 when a row was altered or removed."""

    async def work(database: Database, settings: Settings) -> tuple[bool, str]:
        async with database.transaction() as session:
            report = await verify_chain(session)
        return report.ok, report.detail

    ok, detail = run_async(work)
    typer.echo(f"{'ok  ' if ok else 'FAIL'} audit chain: {detail}")
    if not ok:
        raise typer.Exit(1)
