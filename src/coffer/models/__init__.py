"""Every table, re-exported so Alembic and the app see one metadata."""

from coffer.models.apikey import ApiKey, IdempotencyRecord
from coffer.models.audit import AuditChainHead, AuditEvent
from coffer.models.base import Base
from coffer.models.event import Event
from coffer.models.fee import FeeStatus, WalletFee
from coffer.models.fx import FxFixedRate, FxQuote, FxRate, FxRateHold
from coffer.models.identity import (
    AuthSession,
    CodePurpose,
    OAuthState,
    OneTimeCode,
    RecoveryCode,
    RefreshToken,
    TotpCredential,
    UserIdentity,
)
from coffer.models.ledger import LedgerAccount, LedgerEntry, LedgerPosting
from coffer.models.limit import DailyLimitUsage, LimitOverride
from coffer.models.notification import NotificationPreference, SentNotification
from coffer.models.outbox import OutboxJob, OutboxStatus
from coffer.models.payment import (
    Deposit,
    DepositStatus,
    InboxOutcome,
    PayoutDestination,
    SandboxCharge,
    SandboxPayout,
    SandboxRecipient,
    SavedCard,
    WebhookInboxEntry,
    Withdrawal,
    WithdrawalStatus,
)
from coffer.models.transfer import BatchMode, GroupStatus, Transfer, TransferBatch, TransferStatus
from coffer.models.user import Role, User
from coffer.models.wallet import (
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
    WalletStatus,
)
from coffer.models.webhook import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFanOutCursor,
)

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "AuthSession",
    "Base",
    "BatchMode",
    "CodePurpose",
    "DailyLimitUsage",
    "DeliveryStatus",
    "Deposit",
    "DepositStatus",
    "Event",
    "FeeStatus",
    "FxFixedRate",
    "FxQuote",
    "FxRate",
    "FxRateHold",
    "GroupStatus",
    "IdempotencyRecord",
    "InboxOutcome",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerPosting",
    "LimitOverride",
    "NotificationPreference",
    "OAuthState",
    "OneTimeCode",
    "OutboxJob",
    "OutboxStatus",
    "PayoutDestination",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "SandboxCharge",
    "SandboxPayout",
    "SandboxRecipient",
    "SavedCard",
    "SentNotification",
    "TotpCredential",
    "Transaction",
    "TransactionStatus",
    "TransactionType",
    "Transfer",
    "TransferBatch",
    "TransferStatus",
    "User",
    "UserIdentity",
    "Wallet",
    "WalletFee",
    "WalletStatus",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookFanOutCursor",
    "WebhookInboxEntry",
    "Withdrawal",
    "WithdrawalStatus",
]
