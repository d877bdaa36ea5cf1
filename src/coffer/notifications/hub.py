"""Delivering committed events to this API process's websockets.

The events table is the truth and the only source: each API process tails it by id
(`events_after(cursor)`), in commit order, and hands each event to the sockets of its user.
Nothing is carried in a message, so an event can be neither lost nor invented between commit
and delivery: a process that dies after committing loses no event (the others read it from the
table), and a reader that starts late or reconnects reads what it missed from the same table.

What is fast is the wake-up. After a commit that wrote events, `CommitNudger` wakes this
process's hub at once and, when COFFER_REDIS_URL is set, publishes a nudge on the Redis channel
`coffer:events` that wakes every other API process's hub (events committed by a Celery worker
reach the API processes this way too). A lost nudge (Redis down, a process between commit and
publish) costs only latency: every hub also reads the table every
COFFER_EVENTS_POLL_INTERVAL_SECONDS. Each hub reads the table at most once per wake-up, however
many sockets it serves.

The hub also re-checks the credential of every open socket every
COFFER_WS_RECHECK_INTERVAL_SECONDS, in one query per kind, and closes those whose session was
revoked or expired, whose key was revoked or expired, or whose account was deactivated.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from coffer.apikeys import repository as apikeys_repository
from coffer.db import Database
from coffer.identity import repository as identity_repository
from coffer.kit.clock import utcnow
from coffer.notifications.events import (
    events_after,
    newest_event_id,
    on_events_committed,
)
from coffer.settings import Settings

log = structlog.get_logger(__name__)

CHANNEL = "coffer:events"
"""Redis pub/sub channel of the wake-ups (the message says nothing: read the table)."""
READ_BATCH = 500
"""Events read per query when catching up."""
REDIS_RETRY_SECONDS = 2.0


class CommitNudger:
    """After each commit in this process that wrote events: wake the local hubs, and publish
    one nudge to Redis (coalesced: commits during a publish share the next one)."""

    def __init__(self, redis_url: str | None) -> None:
        self._redis = Redis.from_url(redis_url) if redis_url else None
        self._local: list[Callable[[], None]] = []
        self._publishing: asyncio.Task[None] | None = None
        self._again = False
        self._remove: Callable[[], None] | None = None

    def install(self) -> None:
        self._remove = on_events_committed(self._committed)

    def wake_locally(self, wake: Callable[[], None]) -> None:
        self._local.append(wake)

    def _committed(self) -> None:
        for wake in self._local:
            wake()
        if self._redis is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a commit outside any event loop: the pollers will see it
        if self._publishing is not None and not self._publishing.done():
            self._again = True
            return
        self._publishing = loop.create_task(self._publish())

    async def _publish(self) -> None:
        if self._redis is None:
            return
        while True:
            self._again = False
            try:
                await self._redis.publish(CHANNEL, b"")
            except (RedisError, OSError) as error:
                log.warning("events.nudge_failed", error=type(error).__name__)
                return
            if not self._again:
                return

    async def idle(self) -> None:
        """Wait for a nudge in flight (a job process publishes before its loop stops)."""
        if self._publishing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing

    async def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
        await self.idle()
        if self._redis is not None:
            await self._redis.aclose()


@dataclass(eq=False)
class Subscriber:
    """One authenticated websocket: its user, its credential, and what waits to be sent.

    The hub only appends and signals; the socket's own task sends, so nothing else ever
    writes to the socket."""

    user_id: uuid.UUID
    session_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    queue_limit: int
    pending: deque[tuple[int, str]] = field(default_factory=deque)
    """(event id, envelope JSON), oldest first."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: str | None = None
    """Why the socket must close (its credential ended, or it fell too far behind)."""

    def offer(self, event_id: int, text: str) -> None:
        if self.ended is not None:
            return
        if len(self.pending) >= self.queue_limit:
            # A client this far behind reconnects with last_event_id and reads the table.
            self.end("too_slow")
            return
        self.pending.append((event_id, text))
        self.ready.set()

    def end(self, reason: str) -> None:
        self.ended = reason
        self.pending.clear()
        self.ready.set()


class EventHub:
    """This process's sockets by user, the tail of the events table, and the re-checks."""

    def __init__(self, database: Database, settings: Settings, nudger: CommitNudger) -> None:
        self.database = database
        self.settings = settings
        self.subscribers: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self.count = 0
        self.cursor: int | None = None
        """The newest event handed out; None until the table was first read."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        nudger.wake_locally(self.wake)

    async def start(self) -> None:
        """Start tailing (from the newest event: sockets replay what came before from the
        table themselves). A database that is down at start only delays that."""
        self._tasks = [
            asyncio.create_task(self._tail_forever()),
            asyncio.create_task(self._recheck_forever()),
        ]
        if self.settings.redis_url:
            self._tasks.append(asyncio.create_task(self._listen_forever(self.settings.redis_url)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        self._wake.set()

    @property
    def is_ready(self) -> bool:
        """Whether the tail has a cursor: a socket subscribed before that could miss events
        committed between its replay and the first read."""
        return self.cursor is not None

    def is_full(self) -> bool:
        return self.count >= self.settings.ws_max_connections

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers[subscriber.user_id].add(subscriber)
        self.count += 1

    def unsubscribe(self, subscriber: Subscriber) -> None:
        mine = self.subscribers.get(subscriber.user_id)
        if mine is None or subscriber not in mine:
            return
        mine.discard(subscriber)
        self.count -= 1
        if not mine:
            del self.subscribers[subscriber.user_id]

    async def _tail_forever(self) -> None:
        while self.cursor is None:
            try:
                async with self.database.read() as session:
                    self.cursor = await newest_event_id(session)
            except Exception as error:  # the database may be starting
                log.warning("events.tail_failed", error=type(error).__name__)
                await asyncio.sleep(self.settings.events_poll_interval_seconds)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.settings.events_poll_interval_seconds
                )
            self._wake.clear()
            try:
                await self._catch_up()
            except Exception as error:  # the database went away: the next poll tries again
                log.warning("events.tail_failed", error=type(error).__name__)

    async def _catch_up(self) -> None:
        """Offer each socket its user's events committed since the cursor.

        With no socket open, the cursor moves to the newest event without reading a row (each
        API process used to read and decode every event of everyone: four per transfer). A
        socket that subscribes after that replays past it from the table, since it
        subscribes before its replay; one that subscribed during the lookup makes this a
        normal read.
        """
        if self.cursor is not None and not self.subscribers:
            async with self.database.read() as session:
                newest = await newest_event_id(session)
            if not self.subscribers:
                self.cursor = max(self.cursor, newest)
                return
        while self.cursor is not None:
            async with self.database.read() as session:
                batch = await events_after(session, self.cursor, limit=READ_BATCH)
            for event in batch:
                self.cursor = event.id
                mine = self.subscribers.get(event.user_id)
                if mine:
                    text = event.to_json()  # once, however many sockets the user has
                    for subscriber in list(mine):
                        subscriber.offer(event.id, text)
            if len(batch) < READ_BATCH:
                return

    async def _listen_forever(self, redis_url: str) -> None:
        while True:
            client = Redis.from_url(redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wake()
            except (RedisError, OSError) as error:
                log.warning("events.redis_listen_failed", error=type(error).__name__)
            finally:
                await client.aclose()
            await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ws_recheck_interval_seconds)
            try:
                await self.recheck()
            except Exception as error:  # the database went away: the next round tries again
                log.warning("events.recheck_failed", error=type(error).__name__)

    async def recheck(self) -> None:
        """Close every socket whose credential ended since it authenticated."""
        open_now = [s for group in self.subscribers.values() for s in group]
        if not open_now:
            return
        sessions = {s.session_id for s in open_now if s.session_id is not None}
        keys = {s.api_key_id for s in open_now if s.api_key_id is not None}
        now = utcnow()
        idle = timedelta(seconds=self.settings.session_idle_timeout_seconds)
        async with self.database.read() as session:
            ended_sessions = await identity_repository.ended_sessions(session, sessions, now, idle)
            ended_keys = await apikeys_repository.ended_keys(session, keys, now)
        for subscriber in open_now:
            reason = (
                ended_sessions.get(subscriber.session_id)
                if subscriber.session_id is not None
                else ended_keys.get(subscriber.api_key_id)
                if subscriber.api_key_id is not None
                else None
            )
            if reason is not None:
                self.unsubscribe(subscriber)
                subscriber.end(reason)
