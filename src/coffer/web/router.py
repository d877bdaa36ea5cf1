"""Every page of the web app, under /app, with its assets and error pages."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from coffer.web import (
    account_pages,
    admin_pages,
    admin_system_pages,
    auth_pages,
    payment_pages,
    transfer_pages,
    wallet_pages,
)
from coffer.web.edge import WEB_PREFIX, install_error_pages
from coffer.web.rendering import STATIC_DIR, STATIC_PREFIX


def web_router() -> APIRouter:
    router = APIRouter(prefix=WEB_PREFIX, include_in_schema=False)
    for pages in (
        auth_pages,
        wallet_pages,
        transfer_pages,
        payment_pages,
        account_pages,
        admin_pages,
        admin_system_pages,
    ):
        router.include_router(pages.router)
    return router


def install_web(app: FastAPI) -> None:
    install_error_pages(app)
    app.include_router(web_router())
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web-static")
