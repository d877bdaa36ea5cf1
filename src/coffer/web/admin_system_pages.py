"""Admin pages about the system rather than one user: the audit log, the dead jobs (what
`coffer jobs dead` and `coffer jobs retry` do) and the ledger's invariant check."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.admin.service import dead_jobs, retry_dead_job
from coffer.audit.service import events_page
from coffer.db import Database
from coffer.errors import AppError
from coffer.identity import totp
from coffer.ledger.verify import verify_ledger
from coffer.settings import Settings
from coffer.web.admin_access import (
    ADMIN_PREFIX,
    CurrentAdmin,
    actor,
    carry_out,
    form_context,
)
from coffer.web.edge import VerifiedForm, redirect
from coffer.web.messages import error_message
from coffer.web.rendering import render
from coffer.web.session import WebUser

router = APIRouter(prefix="/admin")

AUDIT_PAGE_SIZE = 50
JOBS_PAGE_SIZE = 50
Cursor = Annotated[str | None, Query(max_length=512)]


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


@router.get("/audit")
async def audit_log(
    request: Request,
    admin: CurrentAdmin,
    cursor: Cursor = None,
    user_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    async with _database(request).read() as session:
        events, next_cursor = await events_page(
            session, limit=AUDIT_PAGE_SIZE, cursor=cursor, subject_user_id=user_id
        )
    return render(
        request,
        "admin/audit.html",
        {"events": events, "next_cursor": next_cursor, "cursor": cursor, "subject_id": user_id},
    )


async def _jobs_page(
    request: Request,
    admin: WebUser,
    cursor: str | None,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    async with _database(request).read() as session:
        jobs, next_cursor = await dead_jobs(session, limit=JOBS_PAGE_SIZE, cursor=cursor)
        admin_has_two_factor = await totp.is_enabled(session, admin.user_id)
    return render(
        request,
        "admin/jobs.html",
        {
            "jobs": jobs,
            "next_cursor": next_cursor,
            "cursor": cursor,
            "notice": notice,
            "error": error,
            "admin_has_two_factor": admin_has_two_factor,
            **form_context(),
        },
        status_code=status_code,
    )


@router.get("/jobs")
async def list_dead_jobs(
    request: Request,
    admin: CurrentAdmin,
    cursor: Cursor = None,
    retried: Annotated[int | None, Query()] = None,
) -> Response:
    notice = f"Job {retried} is queued again with fresh attempts." if retried else None
    return await _jobs_page(request, admin, cursor, notice=notice)


@router.post("/jobs/{job_id}/retry")
async def retry_job(
    request: Request, job_id: Annotated[int, Path()], form: VerifiedForm, admin: CurrentAdmin
) -> Response:
    async def work(session: AsyncSession, settings: Settings) -> str:
        await retry_dead_job(session, job_id, actor=actor(admin))
        return str(job_id)

    try:
        retried = await carry_out(request, admin, form, work)
    except AppError as error:
        return await _jobs_page(
            request, admin, None, error=error_message(error), status_code=error.http_status
        )
    return redirect(f"{ADMIN_PREFIX}/jobs?retried={retried}")


@router.get("/ledger")
async def ledger_check(
    request: Request, admin: CurrentAdmin, run: Annotated[bool, Query()] = False
) -> Response:
    """The check reads every entry, so it runs when asked, not on every visit."""
    checks = None
    if run:
        async with _database(request).read() as session:
            checks = await verify_ledger(session)
    return render(
        request,
        "admin/ledger.html",
        {"checks": checks, "all_ok": checks is not None and all(c.ok for c in checks)},
    )
