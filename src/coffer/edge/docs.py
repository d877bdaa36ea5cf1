"""`/docs`, `/redoc` and `/openapi.json`, served with every asset from the installed packages
(fastapi-offline ships the Swagger UI and ReDoc bundles), so an offline install shows its
documentation. Off in production unless COFFER_DOCS_ENABLED=true."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from coffer.errors import NotFound

ASSETS_PREFIX = "/docs/assets"
_BUNDLES = Path(fastapi_offline.__file__).parent / "static"
_ASSETS = {
    "swagger-ui-bundle.js": _BUNDLES / "swagger-ui-bundle.js",
    "swagger-ui.css": _BUNDLES / "swagger-ui.css",
    "redoc.standalone.js": _BUNDLES / "redoc.standalone.js",
    "favicon.png": _BUNDLES / "favicon.png",
    "swagger-init.js": Path(__file__).parent / "static" / "swagger-init.js",
}
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""For the HTML pages: their scripts come from this server only, no inline script runs; forms
(the sandbox checkout's buttons) post only here."""


def _page(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><link rel='icon' href='{ASSETS_PREFIX}/favicon.png'>{head}"
        f"</head><body>{body}</body></html>"
    )


def install_docs(app: FastAPI) -> None:
    """Routes for the documentation; the app is made with its own docs routes turned off."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(
            f"{app.title} API",
            f"<link rel='stylesheet' href='{ASSETS_PREFIX}/swagger-ui.css'>",
            f"<div id='swagger-ui'></div><script src='{ASSETS_PREFIX}/swagger-ui-bundle.js'>"
            f"</script><script src='{ASSETS_PREFIX}/swagger-init.js'></script>",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(
            f"{app.title} API",
            "",
            f"<redoc spec-url='/openapi.json'></redoc>"
            f"<script src='{ASSETS_PREFIX}/redoc.standalone.js'></script>",
        )

    @app.get(ASSETS_PREFIX + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        path = _ASSETS.get(name)
        if path is None:
            raise NotFound()
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
