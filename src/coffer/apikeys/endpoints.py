"""API key management. Signed-in users only: an API key can never manage API keys (403)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from coffer.apikeys import service
from coffer.apikeys.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyPage,
    ApiKeyRollover,
    IssuedApiKey,
)
from coffer.auth.principal import UserPrincipal
from coffer.auth.step_up import StepUp
from coffer.http import AppSettings, Session, error_responses
from coffer.idempotency.dependency import Idempotency, IdempotentRoute
from coffer.kit.clock import utcnow
from coffer.models import ApiKey
from coffer.schemas import Envelope

router = APIRouter(prefix="/keys", tags=["api keys"], route_class=IdempotentRoute)

_ISSUING = Depends(Idempotency(shown_once=("api_key",)))


def _issued(issued: service.IssuedKey) -> IssuedApiKey:
    key = issued.key
    return IssuedApiKey(
        id=key.id,
        api_key=issued.secret,
        name=key.name,
        prefix=key.prefix,
        permissions=key.permissions,
        created_at=key.created_at,
        expires_at=key.expires_at,
    )


def listed_key(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        permissions=key.permissions,
        status=service.status_of(key, utcnow()),
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


@router.post(
    "/create",
    status_code=201,
    summary="Create an API key (shown once; needs a step-up)",
    dependencies=[_ISSUING],
    responses=error_responses(401, 403, 409, 422, 429),
)
async def create_key(
    body: ApiKeyCreate, principal: StepUp, session: Session, settings: AppSettings
) -> Envelope[IssuedApiKey]:
    issued = await service.create_key(
        session,
        settings,
        principal.user_id,
        name=body.name,
        permissions=body.permissions,
        expiry=body.expiry,
    )
    return Envelope(status_code=201, message="API key created; store it now", data=_issued(issued))


@router.get("", summary="List your API keys", responses=error_responses(401, 403, 422, 429))
async def list_keys(
    principal: UserPrincipal,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Envelope[ApiKeyPage]:
    keys, next_cursor = await service.list_keys(
        session, principal.user_id, limit=limit, cursor=cursor
    )
    return Envelope(data=ApiKeyPage(keys=[listed_key(k) for k in keys], next_cursor=next_cursor))


@router.post(
    "/rollover",
    status_code=201,
    summary="Replace an expired key, once, with a new one of the same name and permissions "
    "(needs a step-up)",
    dependencies=[_ISSUING],
    responses=error_responses(400, 401, 403, 404, 409, 422, 429),
)
async def rollover_key(
    body: ApiKeyRollover, principal: StepUp, session: Session, settings: AppSettings
) -> Envelope[IssuedApiKey]:
    issued = await service.rollover(
        session,
        settings,
        principal.user_id,
        expired_key_id=body.expired_key_id,
        expiry=body.expiry,
    )
    return Envelope(status_code=201, message="API key rolled over", data=_issued(issued))


@router.delete(
    "/{key_id}",
    summary="Revoke an API key at once",
    dependencies=[Depends(Idempotency())],
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def revoke_key(
    key_id: uuid.UUID, principal: UserPrincipal, session: Session
) -> Envelope[ApiKeyOut]:
    key = await service.revoke(session, principal.user_id, key_id)
    return Envelope(message="API key revoked", data=listed_key(key))
