"""What the processes' own logs say went wrong.

An unhandled error is a bug even when no client saw its 500: the client may have given up
before the answer, or the error may have come after it. The report names each distinct one by
where it happened and its cause chain (types and SQLSTATEs only: coffer's logs carry no
messages), so a failed run points at the code to read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

UNHANDLED_EVENTS = frozenset({"http.unhandled_error"})
"""Log events that mean a request met an error no handler knew: every one is a violation."""
APP_ERROR_EVENT = "http.app_error"
"""A domain error answered with a 5xx (a ledger invariant, a provider failure): a violation
too, except the outage answer a client is told to retry."""
RETRYABLE_CODES = frozenset({"service_unavailable"})
UNHANDLED_PREFIXES = ("Exception in ASGI application",)
"""uvicorn's own line for an error that escaped the application."""


def unhandled_errors(folder: Path) -> Counter[str]:
    """Each distinct unhandled error in the folder's `*.log` files (JSON lines), counted."""
    found: Counter[str] = Counter()
    for path in sorted(folder.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            record = _record(line)
            if record is None:
                continue
            if _is_unhandled(record):
                found[_describe(path.name, record)] += 1
    return found


def _record(line: str) -> dict[str, object] | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _is_unhandled(record: dict[str, object]) -> bool:
    event = str(record.get("event", ""))
    if event == APP_ERROR_EVENT:
        return record.get("code") not in RETRYABLE_CODES
    return event in UNHANDLED_EVENTS or event.startswith(UNHANDLED_PREFIXES)


def _describe(log_name: str, record: dict[str, object]) -> str:
    chain = record.get("error_chain")
    if isinstance(chain, list):
        cause = " <- ".join(map(str, chain))
    else:
        cause = f"{record.get('event')} {record.get('code', '')}".strip()
    where = f"{record.get('method', '')} {record.get('path', '')}".strip()
    raised_at = record.get("raised_at")
    return f"{log_name}: {where or '?'}: {cause}" + (f" (at {raised_at})" if raised_at else "")
