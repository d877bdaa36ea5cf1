"""Jobs that publish settled events. Today they go to the structured log; email, websocket
and outbound-webhook delivery subscribe here as they arrive."""

from __future__ import annotations

from typing import Any

import structlog

from coffer.db import Database
from coffer.jobs.registry import job
from coffer.settings import Settings

log = structlog.get_logger(__name__)


@job("notifications.transfers_settled")
async def publish_transfers_settled(
    database: Database, settings: Settings, payload: dict[str, Any]
) -> None:
    for transfer in payload.get("transfers", []):
        log.info(
            "transfer.settled",
            reference=transfer.get("reference"),
            status=transfer.get("status"),
            failure_reason=transfer.get("failure_reason"),
        )
