"""Mounts every domain router under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from coffer.admin.endpoints import router as admin_router
from coffer.apikeys.endpoints import router as apikeys_router
from coffer.audit.endpoints import router as security_events_router
from coffer.fx.endpoints import router as fx_router
from coffer.identity.account_endpoints import me_router
from coffer.identity.endpoints import auth_router
from coffer.notifications.endpoints import router as notification_preferences_router
from coffer.notifications.websocket import router as events_websocket_router
from coffer.payments.endpoints import router as payments_router
from coffer.payments.endpoints import webhook_router, withdraw_router
from coffer.transfers.endpoints import router as transfers_router
from coffer.wallets.endpoints import wallet_router, wallets_router
from coffer.webhooks.endpoints import router as webhook_endpoints_router

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    router.include_router(fx_router)
    router.include_router(apikeys_router)
    router.include_router(wallet_router)
    router.include_router(wallets_router)
    router.include_router(transfers_router)
    router.include_router(auth_router)
    router.include_router(me_router)
    router.include_router(payments_router)
    router.include_router(withdraw_router)
    router.include_router(webhook_router)
    router.include_router(admin_router)
    router.include_router(security_events_router)
    router.include_router(notification_preferences_router)
    router.include_router(webhook_endpoints_router)
    router.include_router(events_websocket_router)
    return router
