"""Request and response bodies of the FX routes."""

from __future__ import annotations

from pydantic import Field

from coffer.fx.service import quote_conversion
from coffer.models import FxQuote
from coffer.schemas import AmountInput, AmountOutput, RequestSchema, Schema, UtcDateTime


class QuoteCreate(RequestSchema):
    from_currency: str = Field(min_length=3, max_length=3, examples=["USD"])
    to_currency: str = Field(min_length=3, max_length=3, examples=["NGN"])
    amount: AmountInput
    """What the sender would send, in `from_currency`, the spread included."""


class Quote(Schema):
    quote_id: str
    from_currency: str
    to_currency: str
    rate: str = Field(
        description="Units of to_currency per unit of from_currency", examples=["1500"]
    )
    send_amount: AmountOutput
    fee: AmountOutput = Field(description="The spread, in from_currency, included in send_amount")
    receive_amount: AmountOutput
    expires_at: UtcDateTime

    @classmethod
    def of(cls, quote: FxQuote) -> Quote:
        conversion = quote_conversion(quote)
        return cls(
            quote_id=quote.id,
            from_currency=quote.from_currency,
            to_currency=quote.to_currency,
            rate=format(quote.rate, "f"),
            send_amount=conversion.send.format(),
            fee=conversion.fee.format(),
            receive_amount=conversion.receive.format(),
            expires_at=quote.expires_at,
        )
