"""Structured JSON logs with the request id on every line.

Logs never carry secrets or stack traces: errors are logged by type and request id, and
anything richer belongs in an error tracker that is configured to scrub.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

_CHATTY_LIBRARIES = (
    "aiosqlite",
    "asyncpg",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "httpx",
    "httpcore",
)


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of the write, not at configuration: a
    stream replaced (and closed) since then must not make every later log call raise."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _JsonLinesHandler(logging.StreamHandler[TextIO]):
    """The one root handler coffer installs (configuring twice must not print lines twice)."""


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )
    # The standard library's records (uvicorn's supervisor among them: a worker that died and
    # its replacement) come out as the same JSON lines, through one handler of ours.
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(isinstance(handler, _JsonLinesHandler) for handler in root.handlers):
        handler = _JsonLinesHandler(cast(TextIO, _CurrentStderr()))
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=renderer,
                foreign_pre_chain=[
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                ],
            )
        )
        root.addHandler(handler)
    # These libraries log SQL parameters or HTTP details (password hashes, token hashes, codes
    # in URLs) at debug and info level: they stay at warnings whatever COFFER_LOG_LEVEL says.
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
