"""Batch transfer routes: up to 1,000 transfers in one request, and its settlement progress.

Each item carries its own idempotency key (coffer.transfers.batches). The request may also
carry an Idempotency-Key header for the batch as a whole (the generic store, coffer.idempotency):
the same key and body then replay the first response byte for byte -- the same batch id,
every item as first answered; without it, a resent batch is a new batch whose items replay
by their own keys (`replayed: true`), so no transfer is made twice either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from coffer.auth.principal import Reader, TransferWriter
from coffer.http import AppSettings, Session, error_responses
from coffer.idempotency.dependency import Idempotency, IdempotentRoute
from coffer.schemas import Envelope
from coffer.transfers import batches
from coffer.transfers.batch_schemas import BatchAccepted, BatchProgressOut, TransferBatchCreate

BATCH_PATH = "/transfers/batch"

router = APIRouter(tags=["transfers"], route_class=IdempotentRoute)


@router.post(
    BATCH_PATH,
    status_code=202,
    summary="Send up to 1,000 transfers at once, independent or linked (all or none)",
    responses=error_responses(401, 403, 409, 422, 429),
    dependencies=[Depends(Idempotency())],
)
async def create_batch(
    body: TransferBatchCreate, principal: TransferWriter, session: Session, settings: AppSettings
) -> Envelope[BatchAccepted]:
    batch = await batches.accept_batch(
        session,
        principal.user_id,
        body.mode,
        [item.request(principal.user_id) for item in body.transfers],
        settings=settings,
    )
    data = BatchAccepted.of(batch)
    message = "Batch accepted" if data.accepted else "Batch refused: no transfer was made"
    return Envelope(status_code=202, message=message, data=data)


@router.get(
    f"{BATCH_PATH}/{{batch_id}}",
    summary="A batch's settlement progress: counts and each item's status",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def batch_status(
    batch_id: Annotated[str, Path(max_length=64)], principal: Reader, session: Session
) -> Envelope[BatchProgressOut]:
    progress = await batches.batch_progress(session, principal.user_id, batch_id)
    return Envelope(message="Batch progress", data=BatchProgressOut.of(progress))
