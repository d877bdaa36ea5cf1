"""The checker as the sandbox provider's webhook sender: signed deliveries it makes itself.

The sandbox delivers its own events (the checkout's buttons, the payout simulator's job); the
checker sends the same events again, on purpose, to the public webhook route, signed with the
COFFER_SANDBOX_WEBHOOK_SECRET it gave coffer's processes: each must be dropped as a duplicate,
never applied twice. The bodies are written here from the sandbox's documented wire format
(event, data.reference, amount, currency), not with coffer's own helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from coffer.check.client import Intent

WEBHOOK_PATH = "/api/v1/wallet/sandbox/webhook"
SIGNATURE_HEADER = "x-sandbox-signature"
PAYOUT_EVENTS = {
    "success": ("transfer.success",),
    "failed": ("transfer.failed",),
    "reversed": ("transfer.success", "transfer.reversed"),
}
"""What the sandbox sent for a withdrawal that ended so (an OTP refusal sends nothing)."""


def _signed(secret: str, event: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}


def delivery(secret: str, sender: int, event: str, data: dict[str, Any], operation: str) -> Intent:
    """One webhook delivery as a follow-up intent (a provider retries until a 2xx)."""
    raw, headers = _signed(secret, event, data)
    intent = Intent(-1, operation, sender, WEBHOOK_PATH, {"event": event, **data}, "")
    intent.content = raw
    intent.headers = headers
    return intent


def charge_delivery(
    secret: str, sender: int, reference: str, amount_minor: int, currency: str, paid: bool
) -> Intent:
    data = {
        "reference": reference,
        "amount": amount_minor,
        "currency": currency,
        "status": "success" if paid else "failed",
        "paid_at": "2026-01-01T00:00:00+00:00" if paid else None,
    }
    event = "charge.success" if paid else "charge.failed"
    return delivery(secret, sender, event, data, "webhook_charge")


def payout_deliveries(
    secret: str, sender: int, reference: str, amount_minor: int, currency: str, status: str
) -> list[Intent]:
    """The sandbox's events for a withdrawal that ended in `status`, in their order."""
    found = []
    for event in PAYOUT_EVENTS.get(status, ()):
        data = {
            "reference": reference,
            "amount": amount_minor,
            "currency": currency,
            "transfer_code": None,
            "status": event.removeprefix("transfer."),
            "reason": None,
        }
        found.append(delivery(secret, sender, event, data, "webhook_payout"))
    return found
