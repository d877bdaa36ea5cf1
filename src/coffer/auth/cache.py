"""A short-lived per-process cache of authenticated sessions and API keys.

Why: reading the session (or key) and its owner from the database costs every request a
transaction of its own (BEGIN, a SELECT, COMMIT) before any work, and a JWT verification;
on the transfer hot path that was a quarter of an API process's CPU (issue 13).

The bound (COFFER_AUTH_CACHE_SECONDS, 2 s by default; 0 turns the cache off): an entry is
trusted for at most that long after it was read from the database. A revocation -- a logout,
a revoked or rolled-over key, a deactivated account, a role change -- made by any process
therefore takes effect in every process within the bound. In the process that made it, at
once: the revoking transaction evicts the owner's entries when it commits
(`forget_on_commit`).

Only the answer "still valid, nothing to write" comes from the cache. Whatever decides a
write (an idle timeout that revokes the session, a last-seen or last-used stamp that is due)
and step-up freshness are judged on a fresh read, as without the cache.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.identity.tokens import AccessClaims

MAX_ENTRIES = 10_000
"""Per kind (sessions, keys): the oldest entry goes when a new one would exceed it."""


@dataclass(frozen=True, slots=True)
class CachedSession:
    """A Bearer token whose session was open and whose owner was active when read."""

    claims: AccessClaims
    role: str
    expires_at: datetime
    last_seen_at: datetime
    stepped_up_at: datetime | None


@dataclass(frozen=True, slots=True)
class CachedKey:
    """An API key that was live, with an active owner, when read."""

    id: uuid.UUID
    user_id: uuid.UUID
    role: str
    permissions: frozenset[str]
    expires_at: datetime
    last_used_at: datetime | None


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V", CachedSession, CachedKey)


class _Entries(Generic[_K, _V]):
    """Entries by key, each with the monotonic time it was read, owned by a user."""

    def __init__(self) -> None:
        self._entries: dict[_K, tuple[float, uuid.UUID, _V]] = {}

    def get(self, key: _K, ttl_seconds: float) -> _V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        read_at, _, value = found
        if time.monotonic() - read_at >= ttl_seconds:
            del self._entries[key]
            return None
        return value

    def put(self, key: _K, owner: uuid.UUID, value: _V) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic(), owner, value)

    def replace(self, key: _K, value: _V) -> None:
        """Update an entry's value (a stamp just written) without extending its life."""
        found = self._entries.get(key)
        if found is not None:
            self._entries[key] = (found[0], found[1], value)

    def forget_owner(self, owner: uuid.UUID) -> None:
        for key in [k for k, (_, o, _) in self._entries.items() if o == owner]:
            del self._entries[key]

    def values(self) -> list[tuple[_K, _V]]:
        return [(key, value) for key, (_, _, value) in self._entries.items()]

    def forget(self, key: _K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class AuthCache:
    def __init__(self) -> None:
        self.sessions: _Entries[str, CachedSession] = _Entries()
        """By the Bearer token itself: a hit also skips verifying its signature again."""
        self.keys: _Entries[str, CachedKey] = _Entries()
        """By the presented key's keyed hash (what the database compares, never the key)."""

    def forget_user(self, user_id: uuid.UUID) -> None:
        self.sessions.forget_owner(user_id)
        self.keys.forget_owner(user_id)

    def forget_session(self, session_id: uuid.UUID) -> None:
        """Every access token of the session (a refresh mints another for the same one)."""
        for token, entry in self.sessions.values():
            if entry.claims.session_id == session_id:
                self.sessions.forget(token)

    def clear(self) -> None:
        self.sessions.clear()
        self.keys.clear()


CACHE = AuthCache()
"""This process's cache (every app in the process shares it: entries are keyed by tokens and
key hashes, which no two databases share)."""


def forget_on_commit(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
) -> None:
    """Evict what a revocation in `session` ends -- the user's cached sessions and keys, or one
    session's tokens -- now and again when it commits: a request that re-read the old state in
    between must not keep it for the whole bound."""

    def forget(_: Any = None) -> None:
        if user_id is not None:
            CACHE.forget_user(user_id)
        if session_id is not None:
            CACHE.forget_session(session_id)

    forget()
    event.listen(session.sync_session, "after_commit", forget, once=True)
