"""The transfer intake batcher: concurrent transfer requests share one transaction.

Why: a commit is the unit of cost (DESIGN.md §11). One transaction per `POST /wallet/transfer`
caps a process at the disk's commit rate, so requests that arrive together in one API process
are gathered and stored by `create_transfers` in ONE transaction on the batcher's own session;
each waiting request is then answered with its own outcome.

How it gathers: the first request after an idle spell waits up to
COFFER_TRANSFER_ACCEPT_WINDOW_MS for company (a full batch of COFFER_TRANSFER_ACCEPT_MAX_BATCH
goes at once). While a batch is being stored, newcomers wait for it to finish and then go
together without a further wait -- group commit, so the batch grows with the load and an idle
server adds at most the window to a request. One batch is stored at a time per process: one
connection, and on SQLite (one writer at a time) no batch queues behind another's lock.

What it promises:
- a request is answered only after its batch's transaction committed (or it was refused);
- one bad request never fails its neighbours: `create_transfers` gives each request its own
  outcome, and if the batch's transaction fails as a whole (a deadlock, a constraint, a lost
  connection) each request is retried alone, in its own transaction, and answered with that
  result -- an error for the one that cannot be stored, never a success that was not committed;
- `close()` (at shutdown) stores what is waiting before it returns.

Each API process has its own batcher; nothing about a request lives only here once it is
answered, so many processes behind a load balancer behave as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from coffer.db import Database
from coffer.errors import AppError
from coffer.settings import Settings
from coffer.transfers.service import TransferOutcome, TransferRequest, create_transfers

log = structlog.get_logger(__name__)

_Waiting = tuple[TransferRequest, "asyncio.Future[TransferOutcome]"]


class IntakeClosed(AppError):
    code = "service_unavailable"
    http_status = 503
    default_message = "The server is shutting down; retry the request"


class TransferBatcher:
    """Gathers transfer requests and stores each batch in one transaction (see module doc)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._window_seconds = settings.transfer_accept_window_ms / 1000
        self._max_batch = settings.transfer_accept_max_batch
        self._waiting: list[_Waiting] = []
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._storing = False
        self._closed = False
        self._task = asyncio.create_task(self._run(), name="transfers.batcher")

    def submit(self, request: TransferRequest) -> asyncio.Future[TransferOutcome]:
        """Queue a request; the future resolves to its outcome once its batch is committed."""
        if self._closed:
            raise IntakeClosed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TransferOutcome] = loop.create_future()
        self._waiting.append((request, future))
        if len(self._waiting) >= self._max_batch:
            self._ready.set()
        elif len(self._waiting) == 1 and not self._storing:
            # The first after an idle spell opens the window; a batch being stored would
            # pick this one up as soon as it ends.
            self._timer = loop.call_later(self._window_seconds, self._ready.set)
        return future

    async def close(self) -> None:
        """Stop taking requests, store every waiting one, then end."""
        self._closed = True
        self._ready.set()
        await self._task

    async def _run(self) -> None:
        while not (self._closed and not self._waiting):
            await self._ready.wait()
            self._ready.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._storing = True
                try:
                    await self._store(batch)
                finally:
                    self._storing = False

    async def _store(self, batch: Sequence[_Waiting]) -> None:
        try:
            outcomes = await self._create([request for request, _ in batch])
        except Exception as error:  # any failure of the whole: retry one by one
            log.warning("transfers.batch_failed", size=len(batch), error_type=type(error).__name__)
            for item in batch:
                await self._store_alone(item)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _answer(future, outcome)

    async def _store_alone(self, item: _Waiting) -> None:
        request, future = item
        try:
            (outcome,) = await self._create([request])
        except Exception as error:  # the request's own failure, raised in it
            if not future.done():
                future.set_exception(error)
            return
        _answer(future, outcome)

    async def _create(self, requests: Sequence[TransferRequest]) -> list[TransferOutcome]:
        """Store requests in one transaction; returns only once it has committed."""
        async with self._database.transaction() as session:
            outcomes = await create_transfers(
                session,
                requests,
                max_amount_minor=self._settings.max_amount_minor,
                settings=self._settings,
            )
        return outcomes


def _answer(future: asyncio.Future[TransferOutcome], outcome: TransferOutcome) -> None:
    # A request whose client went away has a cancelled future: its transfer stands anyway.
    if not future.done():
        future.set_result(outcome)
