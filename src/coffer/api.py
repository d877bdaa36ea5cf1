"""Mounts every domain router under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    return router
