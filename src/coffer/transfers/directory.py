"""The wallets and owners one intake batch needs, loaded in two queries and looked up here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.db import ResultRow
from coffer.transfers import repository
from coffer.transfers.errors import RecipientNotFound
from coffer.transfers.requests import RecipientKind, TransferRequest
from coffer.wallets.service import WalletNotFound


class Directory:
    """Senders' wallets by owner, and recipients' wallets by number, email and phone."""

    def __init__(
        self, sender_rows: Sequence[ResultRow], recipient_rows: Sequence[ResultRow]
    ) -> None:
        self.by_user: dict[uuid.UUID, list[ResultRow]] = {}
        for row in sender_rows:
            self.by_user.setdefault(row.user_id, []).append(row)
        self.by_number = {row.number: row for row in (*sender_rows, *recipient_rows)}
        self.by_email: dict[str, list[ResultRow]] = {}
        self.by_phone: dict[str, list[ResultRow]] = {}
        for row in recipient_rows:
            self.by_email.setdefault(row.email, []).append(row)
            if row.phone:
                self.by_phone.setdefault(row.phone, []).append(row)

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        requests: Sequence[TransferRequest],
        recipients: dict[int, str],
    ) -> Directory:
        """For the requests at the indexes of `recipients` (their normalized recipients)."""
        return cls(
            await repository.wallets_of_users(
                session, sorted({requests[i].sender_user_id for i in recipients})
            ),
            await repository.wallets_matching(
                session,
                *(
                    sorted({v for i, v in recipients.items() if requests[i].recipient_kind is kind})
                    for kind in RecipientKind
                ),
            ),
        )

    def sender_account_ids(self) -> list[int]:
        return sorted({row.ledger_account_id for rows in self.by_user.values() for row in rows})

    def sender_wallet(self, request: TransferRequest) -> ResultRow:
        wallets = self.by_user.get(request.sender_user_id, [])
        for row in wallets:
            if (
                row.number == request.sender_wallet_number
                if request.sender_wallet_number
                else row.is_primary
            ):
                return row
        raise WalletNotFound()

    def recipient_wallet(self, kind: RecipientKind, recipient: str, currency: str) -> ResultRow:
        if kind is RecipientKind.WALLET_NUMBER:
            row = self.by_number.get(recipient)
            if row is None:
                raise RecipientNotFound()
            return row
        index = self.by_email if kind is RecipientKind.EMAIL else self.by_phone
        wallets = index.get(recipient)
        if not wallets:
            raise RecipientNotFound()
        # The recipient's wallet in the sender's currency, else their primary one.
        return next((w for w in wallets if w.currency == currency), None) or next(
            w for w in wallets if w.is_primary
        )
