"""Refusals that must leave a trace.

A wrong code counts as an attempt and a replayed refresh token revokes its session, yet the
request's unit of work rolls back whenever a route raises. Routes that can refuse this way take
`RecordingSession`: it commits what a `RecordedRefusal` wrote, then lets the refusal answer.
Any other error still rolls everything back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.errors import AppError
from coffer.http import get_database


class RecordedRefusal(AppError):
    """A refusal raised after writing what must outlive it."""


async def get_recording_session(request: Request) -> AsyncIterator[AsyncSession]:
    refusal: RecordedRefusal | None = None
    async with get_database(request).transaction() as session:
        try:
            yield session
        except RecordedRefusal as error:
            refusal = error
    if refusal is not None:
        raise refusal


RecordingSession = Annotated[AsyncSession, Depends(get_recording_session, scope="function")]
"""The request's unit of work, kept when the route ends in a `RecordedRefusal`. Do not combine
with a principal dependency (that opens the ordinary session: two transactions)."""
