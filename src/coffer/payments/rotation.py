"""Key rotation for the payments domain's encrypted columns: card authorizations and bank
account numbers are re-sealed with the current data encryption key, in batches."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.kit.crypto import current_key_id, seal, unseal
from coffer.payments import repository
from coffer.payments.destinations import account_context
from coffer.payments.settlement import card_context
from coffer.settings import Settings

BATCH = 500


async def reseal_batch(session: AsyncSession, settings: Settings) -> int:
    """Re-seal up to one batch of each table; returns how many rows changed (0: all done)."""
    current = current_key_id(settings)
    changed = 0
    for card in await repository.cards_sealed_not_with(session, current, BATCH):
        context = card_context(card.user_id, card.provider, card.signature)
        plain = unseal(settings, card.authorization_sealed, context=context)
        card.authorization_sealed = seal(settings, plain, context=context)
        card.encryption_key_id = current
        changed += 1
    for destination in await repository.destinations_sealed_not_with(session, current, BATCH):
        context = account_context(destination.user_id, destination.provider, destination.bank_code)
        plain = unseal(settings, destination.account_number_sealed, context=context)
        destination.account_number_sealed = seal(settings, plain, context=context)
        destination.encryption_key_id = current
        changed += 1
    await session.flush()
    return changed
