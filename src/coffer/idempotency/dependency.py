"""Idempotency-Key on a route: a dependency that claims the key, and a route class that
answers replays and stores the response.

A route opts in with `dependencies=[Depends(Idempotency())]` on a router whose
`route_class=IdempotentRoute`. The dependency runs inside the request's unit of work: it
claims the key (replaying a stored response by raising `_Replay`); the route class, around
the whole handler, stores a successful response in that same still-open transaction, so the
work and its stored answer commit together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from coffer.auth.principal import CurrentPrincipal
from coffer.http import ExactJSONRoute, Session
from coffer.idempotency import service
from coffer.idempotency.service import MAX_KEY_LENGTH, StoredResponse
from coffer.settings import Settings

REPLAYED_HEADER = "Idempotent-Replayed"
_STATE = "idempotency_claim"


class _Replay(Exception):
    """Control flow: the dependency found a stored response to answer with."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replay")
        self.stored = stored


@dataclass(frozen=True, slots=True)
class _Claim:
    session: AsyncSession
    scope: str
    key: str
    fingerprint: str
    shown_once: tuple[str, ...]
    ttl: timedelta

    async def remember(self, response: Response) -> None:
        await service.remember(
            self.session,
            self.scope,
            self.key,
            self.fingerprint,
            StoredResponse(response.status_code, self._storable(bytes(response.body))),
            self.ttl,
        )

    def _storable(self, body: bytes) -> str:
        document = json.loads(body)
        data = document.get("data") if isinstance(document, dict) else None
        if isinstance(data, dict):
            for field in self.shown_once:
                if field in data:
                    data[field] = None
        return json.dumps(document, separators=(",", ":"))


class Idempotency:
    """The dependency. `shown_once` names fields of `data` that must never be stored (a new
    API key): a replay carries null there."""

    def __init__(self, *, shown_once: tuple[str, ...] = ()) -> None:
        self.shown_once = shown_once

    async def __call__(
        self,
        request: Request,
        principal: CurrentPrincipal,
        session: Session,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=MAX_KEY_LENGTH,
                description="Retry safely: the same key and body replay the first response.",
            ),
        ] = None,
    ) -> None:
        if idempotency_key is None:
            return
        fingerprint = service.fingerprint(request.method, request.url.path, await request.body())
        stored = await service.claim(session, principal.scope, idempotency_key, fingerprint)
        if stored is not None:
            raise _Replay(stored)
        settings: Settings = request.app.state.settings
        setattr(
            request.state,
            _STATE,
            _Claim(
                session,
                principal.scope,
                idempotency_key,
                fingerprint,
                self.shown_once,
                timedelta(hours=settings.idempotency_ttl_hours),
            ),
        )


class IdempotentRoute(ExactJSONRoute):
    """Answers `_Replay` with the stored response and remembers successful responses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return Response(
                    replay.stored.body,
                    status_code=replay.stored.status_code,
                    media_type="application/json",
                    headers={REPLAYED_HEADER: "true"},
                )
            claim: _Claim | None = getattr(request.state, _STATE, None)
            if claim is not None and 200 <= response.status_code < 300:
                await claim.remember(response)
            return response

        return idempotent_handler
