"""`POST /fx/quote`: hold a rate for a minute, for a transfer to name with `quote_id`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from coffer.auth.principal import TransferWriter
from coffer.fx import service
from coffer.fx.schemas import Quote, QuoteCreate
from coffer.http import ExactJSONRoute, Session, error_responses
from coffer.schemas import Envelope
from coffer.settings import Settings

router = APIRouter(prefix="/fx", tags=["fx"], route_class=ExactJSONRoute)


@router.post(
    "/quote",
    status_code=201,
    summary="Quote a conversion; a transfer naming the quote gets its rate",
    response_model=Envelope[Quote],
    responses=error_responses(401, 403, 422, 429),
)
async def create_quote(
    body: QuoteCreate, principal: TransferWriter, session: Session, request: Request
) -> Envelope[Quote]:
    settings: Settings = request.app.state.settings
    quote = await service.create_quote(
        session,
        settings,
        principal.user_id,
        from_currency=body.from_currency,
        to_currency=body.to_currency,
        amount=body.amount,
    )
    return Envelope(status_code=201, message="Quote created", data=Quote.of(quote))
