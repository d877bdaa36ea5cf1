"""The request body cap, in front of everything (authentication included): a declared
Content-Length over the cap is answered 413 before a byte is read, and a chunked body is
counted while it streams and refused the moment it passes the cap, without reading the rest.
A few paths (the transfer batch) have a larger cap of their own."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.errors import BodyRefused
from coffer.http import error_response


def _too_large(max_body_bytes: int) -> BodyRefused:
    return BodyRefused(
        413, "payload_too_large", f"The request body is larger than {max_body_bytes} bytes"
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, per_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.per_path.get(scope["path"], self.max_body_bytes)
        declared = _declared_length(scope)
        if declared is not None and declared > cap:
            refusal = _too_large(cap)
            response = error_response(refusal.status_code, refusal.code, refusal.detail)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # Raised to whoever is reading (FastAPI's body reader, the idempotency
                    # fingerprint): the exception handlers answer 413 in the envelope.
                    raise _too_large(cap)
            return message

        await self.app(scope, counting_receive, send)
