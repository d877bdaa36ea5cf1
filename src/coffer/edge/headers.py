"""Security headers on every response: no MIME sniffing, no referrer, no framing, a strict CSP
(the web app's pages one of their own,
other HTML pages the documentation's), `Cache-Control: no-store` on the API (its responses carry
tokens, keys and balances), and HSTS when the request came over TLS.

TLS is recognised from the ASGI scheme, which uvicorn sets from `X-Forwarded-Proto` only for
proxies in its FORWARDED_ALLOW_IPS (127.0.0.1 by default), or forced with COFFER_BEHIND_TLS
for a TLS terminator that does not send the header.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.edge.docs import DOCS_CONTENT_SECURITY_POLICY

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
WEB_PREFIX = "/app"
WEB_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' https:"
)
"""The web app's pages: assets from this server only, no inline script or style; forms post
here, or (a deposit) on to the payment provider's https checkout."""
HSTS = "max-age=63072000; includeSubDomains"
_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, api_prefix: str, behind_tls: bool) -> None:
        self.app = app
        self.api_prefix = api_prefix
        self.behind_tls = behind_tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = self.behind_tls or scope.get("scheme") == "https"
        is_api = scope["path"].startswith(self.api_prefix)
        is_web = scope["path"] == WEB_PREFIX or scope["path"].startswith(WEB_PREFIX + "/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS.items():
                    headers[name] = value
                is_html = headers.get("content-type", "").startswith("text/html")
                if is_html:
                    policy = WEB_CONTENT_SECURITY_POLICY if is_web else DOCS_CONTENT_SECURITY_POLICY
                else:
                    policy = API_CONTENT_SECURITY_POLICY
                headers["Content-Security-Policy"] = policy
                if is_api or (is_web and is_html):
                    # Balances, keys shown once, forms: nothing of it in a shared cache.
                    headers["Cache-Control"] = "no-store"
                if over_tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
