"""Mounts every domain router under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from coffer.fx.endpoints import router as fx_router

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    router.include_router(fx_router)
    return router
