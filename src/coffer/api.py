"""Mounts every domain router under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from coffer.identity.endpoints import auth_router, me_router

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    router.include_router(auth_router)
    router.include_router(me_router)
    return router
