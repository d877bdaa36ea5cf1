"""Who is on the other end of the current request (IP address and user agent), for security
notices and audit rows written deep inside services that never see the request."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

MAX_USER_AGENT_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Client:
    ip: str | None = None
    user_agent: str | None = None


_current: ContextVar[Client | None] = ContextVar("coffer_client", default=None)


def current_client() -> Client:
    return _current.get() or Client()


def set_client(ip: str | None, user_agent: str | None) -> None:
    _current.set(Client(ip, user_agent[:MAX_USER_AGENT_LENGTH] if user_agent else None))
