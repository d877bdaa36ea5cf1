"""`GET /api/v1/ws`: a user's events, live, over a websocket.

The protocol (also in the README and the OpenAPI description):

1. The client's first message authenticates, within COFFER_WS_AUTH_TIMEOUT_SECONDS:
   `{"action": "authenticate", "token": "<access token>"}` or
   `{"action": "authenticate", "api_key": "<key with read>"}`, optionally with
   `"last_event_id": N`. Never in the query string, which lands in access logs.
2. The server answers `{"type": "authenticated", "last_event_id": N}` (where the stream starts),
   or closes with 4401 and the reason (`authentication_required`, `invalid_token`, ...).
3. With `last_event_id`, first every event of the user after it still within
   COFFER_EVENTS_RETENTION_SECONDS, then live events, each once, in id order: the envelope
   of `coffer.notifications.events`. Without it, only events committed after authenticating.
4. `{"type": "heartbeat"}` after COFFER_WS_HEARTBEAT_INTERVAL_SECONDS without a message.
5. Closed with 4401 and the reason when the session is revoked or expires, the key is revoked
   or expires, or the account is deactivated (checked every COFFER_WS_RECHECK_INTERVAL_SECONDS);
   4408 `too_slow` when the client reads so slowly that events pile up (reconnect with
   `last_event_id`); 1013 when the process holds COFFER_WS_MAX_CONNECTIONS sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Literal

from fastapi import APIRouter, WebSocket
from pydantic import Field, ValidationError, model_validator
from starlette.websockets import WebSocketDisconnect, WebSocketState

from coffer.auth.principal import (
    Permission,
    Principal,
    authenticate_access_token,
    authenticate_key,
)
from coffer.auth.request_limits import RequestLimits
from coffer.db import Database
from coffer.errors import AppError
from coffer.notifications.events import events_after, newest_event_id
from coffer.notifications.hub import READ_BATCH, EventHub, Subscriber
from coffer.schemas import RequestSchema
from coffer.settings import Settings

router = APIRouter(tags=["events"])

UNAUTHENTICATED = 4401
TOO_SLOW = 4408
TRY_AGAIN_LATER = 1013
MAX_PENDING_EVENTS = 1000
"""Events waiting for one slow socket before it is closed `too_slow`."""
MAX_MESSAGE_CHARS = 4096
"""A client message longer than this is not an authenticate message."""


class Authenticate(RequestSchema):
    action: Literal["authenticate"]
    token: str | None = Field(default=None, max_length=4096)
    api_key: str | None = Field(default=None, max_length=256)
    last_event_id: int | None = Field(default=None, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _one_credential(self) -> Authenticate:
        if (self.token is None) == (self.api_key is None):
            raise ValueError("Send either a token or an api_key")
        return self


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


@router.websocket("/ws", name="events_websocket")
async def events_websocket(websocket: WebSocket) -> None:
    hub: EventHub = websocket.app.state.event_hub
    settings: Settings = websocket.app.state.settings
    await websocket.accept()
    try:
        if hub.is_full():
            raise _Refused(TRY_AGAIN_LATER, "too_many_connections")
        if not hub.is_ready:
            raise _Refused(TRY_AGAIN_LATER, "starting")
        message = await _first_message(websocket, settings)
        principal = await _authenticate(websocket, message)
        await _stream(websocket, hub, principal, message.last_event_id)
    except _Refused as refused:
        await _close(websocket, refused.code, refused.reason)
    except WebSocketDisconnect:
        return


async def _first_message(websocket: WebSocket, settings: Settings) -> Authenticate:
    try:
        raw = await asyncio.wait_for(
            websocket.receive_text(), timeout=settings.ws_auth_timeout_seconds
        )
    except TimeoutError:
        raise _Refused(UNAUTHENTICATED, "authentication_timeout") from None
    except KeyError:  # a binary frame
        raise _Refused(UNAUTHENTICATED, "authentication_required") from None
    if len(raw) > MAX_MESSAGE_CHARS:
        raise _Refused(UNAUTHENTICATED, "authentication_required")
    try:
        return Authenticate.model_validate_json(raw)
    except ValidationError:
        raise _Refused(UNAUTHENTICATED, "authentication_required") from None


async def _authenticate(websocket: WebSocket, message: Authenticate) -> Principal:
    """The same checks and limits as a request's credentials; a key needs `read`."""
    settings: Settings = websocket.app.state.settings
    database: Database = websocket.app.state.database
    limits: RequestLimits = websocket.app.state.request_limits
    ip = websocket.client.host if websocket.client else None
    try:
        await limits.before_authentication(ip)
        async with database.read() as session:
            if message.api_key is not None:
                principal = await authenticate_key(
                    session,
                    settings,
                    websocket.app.state.api_key_rate_limiter,
                    message.api_key.strip(),
                )
            else:
                principal = await authenticate_access_token(
                    session, settings, (message.token or "").strip()
                )
    except AppError as error:
        if error.http_status == 401:
            await limits.authentication_failed(ip)
        raise _Refused(UNAUTHENTICATED, error.code) from None
    if Permission.READ not in principal.permissions:
        raise _Refused(UNAUTHENTICATED, "read_permission_required")
    return principal


async def _stream(
    websocket: WebSocket, hub: EventHub, principal: Principal, last_event_id: int | None
) -> None:
    settings: Settings = websocket.app.state.settings
    database: Database = websocket.app.state.database
    subscriber = Subscriber(
        principal.user_id, principal.session_id, principal.api_key_id, MAX_PENDING_EVENTS
    )
    # Subscribed before the replay is read: an event committed meanwhile is either in the
    # replay or in the queue (or both, and sent once).
    hub.subscribe(subscriber)
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        if last_event_id is None:
            async with database.read() as session:
                last_event_id = await newest_event_id(session)
        await websocket.send_text(
            json.dumps(
                {"type": "authenticated", "last_event_id": last_event_id}, separators=(",", ":")
            )
        )
        sent = await _replay(websocket, database, principal, last_event_id)
        await _live(websocket, subscriber, receiver, sent, settings.ws_heartbeat_interval_seconds)
    finally:
        hub.unsubscribe(subscriber)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


async def _replay(
    websocket: WebSocket, database: Database, principal: Principal, after_id: int
) -> int:
    """Send the user's events after `after_id` from the table; the last id sent."""
    while True:
        async with database.read() as session:
            batch = await events_after(
                session, after_id, limit=READ_BATCH, user_ids=[principal.user_id]
            )
        for event in batch:
            await websocket.send_text(event.to_json())
            after_id = event.id
        if len(batch) < READ_BATCH:
            return after_id


async def _live(
    websocket: WebSocket,
    subscriber: Subscriber,
    receiver: asyncio.Task[None],
    sent: int,
    heartbeat_seconds: float,
) -> None:
    while True:
        waiter = asyncio.ensure_future(subscriber.ready.wait())
        done, _ = await asyncio.wait({receiver, waiter}, timeout=heartbeat_seconds)
        if receiver in done:
            waiter.cancel()
            return
        if not done:
            waiter.cancel()
            await websocket.send_text('{"type":"heartbeat"}')
            continue
        subscriber.ready.clear()
        if subscriber.ended is not None:
            code = TOO_SLOW if subscriber.ended == "too_slow" else UNAUTHENTICATED
            raise _Refused(code, subscriber.ended)
        while subscriber.pending:
            event_id, text = subscriber.pending.popleft()
            if event_id > sent:
                await websocket.send_text(text)
                sent = event_id


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends after authenticating, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason)
