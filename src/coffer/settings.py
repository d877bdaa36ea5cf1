"""The one Settings object: every knob is a `COFFER_*` environment variable (or `.env` line)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from coffer.kit.money import CURRENCIES, parse_amount

DEVELOPMENT_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - the placeholder production refuses


BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class WorkerMode(StrEnum):
    EMBEDDED = "embedded"
    """Jobs run inside the API process (the single-machine default)."""
    EXTERNAL = "external"
    """Jobs run in separate `coffer worker` processes; the API only writes the outbox."""


class FxProviderName(StrEnum):
    FIXED = "fixed"
    """Rates an operator keeps in the `fx_fixed_rates` table (`coffer fx set-rate`)."""
    EXCHANGERATE_API = "exchangerate_api"
    """ExchangeRate-API v6 `latest`, over HTTP."""


class SmsBackend(StrEnum):
    LOG = "log"
    """Printed to standard output, like the console email backend (development only)."""
    TWILIO = "twilio"
    """Twilio's Messages API."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COFFER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Runtime
    env: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_json: bool = True

    # Storage. Plain `sqlite:///path.db` and `postgresql://user@host:port/db` are accepted;
    # the async driver is picked in db.py.
    database_url: str = "sqlite:///./coffer.db"
    database_pool_size: int = Field(default=10, ge=1, le=90)
    redis_url: str | None = None

    # Resource limits (issue 12)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest request body accepted, on every route (webhooks included); 413
    `payload_too_large` beyond it, before authentication and without reading the rest."""
    max_batch_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """The same cap for `POST /transfers/batch` alone: 1,000 transfers need more than 64 KiB."""
    rate_limit_per_ip: str = "3000/minute"
    """`limits` notation. Requests to authenticated routes from one client IP (429
    `rate_limited` + Retry-After); shared through Redis when COFFER_REDIS_URL is set."""
    rate_limit_per_user: str = "1200/minute"
    """Requests of one signed-in user (API keys: COFFER_API_KEY_RATE_LIMIT_PER_MINUTE)."""
    failed_auth_limit_per_ip: str = "30/minute"
    """Bad Bearer tokens and bad API keys one IP may send before it is refused outright."""
    max_transfer_waits_per_principal: int = Field(default=10, ge=1, le=1000)
    """Concurrent `Prefer: wait` status requests one user or key may hold open per process."""
    max_open_fx_quotes_per_user: int = Field(default=20, ge=1, le=10_000)
    """Unexpired, unused FX quotes one user may hold; more answer 429 `too_many_fx_quotes`."""

    # Production profile (issue 12)
    docs_enabled: bool | None = None
    """Serve /docs, /redoc and /openapi.json. Unset: on in development and test, off in
    production."""
    behind_tls: bool = False
    """Send HSTS on every response, for a TLS terminator that does not set X-Forwarded-Proto
    (with it, HSTS follows the request's scheme as uvicorn's trusted-proxy handling sets it)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Browser origins allowed to call the API (`https://app.example.com,...` or a JSON list).
    Empty: no CORS headers at all, so browsers keep other origins out."""

    # Secrets
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)

    # Passwords: argon2id, OWASP's profile by default (tests lower it to stay fast)
    password_hash_memory_kib: int = Field(default=19_456, ge=1024)
    password_hash_iterations: int = Field(default=2, ge=1)

    # Money
    default_currency: str = "NGN"
    max_amount_minor: int = Field(default=10**13, ge=1, le=10**15)
    """Upper bound on any single amount, in the currency's minor unit."""

    # Payments
    payment_provider: str = "sandbox"
    """The provider of every currency COFFER_PROVIDER_BY_CURRENCY does not name."""
    provider_by_currency: dict[str, str] = Field(default_factory=dict)
    """Per-currency providers, JSON: {"NGN": "paystack", "USD": "stripe"}."""
    public_url: str = "http://127.0.0.1:8000"
    """Where browsers reach coffer: the sandbox checkout page and the default deposit return
    page are under it."""
    sandbox_webhook_secret: SecretStr | None = None
    """Signs the sandbox's webhooks (HMAC-SHA256). Unset: derived from COFFER_SECRET_KEY in
    development and test; in production an unset secret refuses every sandbox webhook."""
    sandbox_in_production: bool = False
    """The sandbox moves no real money but credits real wallets: refused in production unless
    this is true."""
    deposit_reconcile_after_seconds: int = Field(default=600, ge=10, le=7 * 86_400)
    """A deposit still pending this long is checked with the provider (a lost webhook)."""
    deposit_abandon_after_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    """A deposit the provider still calls pending this long is closed as abandoned."""
    payout_reconcile_after_seconds: int = Field(default=600, ge=10, le=7 * 86_400)
    """A withdrawal in flight this long is checked with the provider."""
    new_destination_cooldown_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    """API keys may only withdraw to payout destinations older than this (a stolen key cannot
    add an account and drain the wallet into it at once)."""

    # Payment provider clients (issue 11): credentials, addresses, timeouts and retries
    paystack_secret_key: SecretStr = SecretStr("")
    """`sk_live_…` / `sk_test_…`: authenticates API calls and keys the webhook HMAC-SHA512."""
    paystack_base_url: str = "https://api.paystack.co"
    stripe_secret_key: SecretStr = SecretStr("")
    stripe_webhook_secret: SecretStr = SecretStr("")
    """The endpoint's `whsec_…` signing secret (Stripe dashboard, Developers → Webhooks)."""
    stripe_base_url: str = "https://api.stripe.com"
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    """A Stripe-Signature timestamp further than this from now, either way, is refused."""
    provider_http_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    provider_http_read_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    provider_http_max_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per provider call; only network errors, timeouts and 5xx are retried."""
    provider_http_backoff_base_seconds: float = Field(default=0.5, ge=0, le=10)
    """First retry waits about this long (half fixed, half jitter), doubling each time."""

    # Identity and sessions (issue 3)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=300)
    session_idle_timeout_seconds: int = Field(default=7 * 86_400, ge=30)
    """A session with no authenticated request for this long is logged out (30 for strict)."""
    auth_cache_seconds: float = Field(default=2.0, ge=0, le=10)
    """How long an API process trusts a session or API key it read from the database
    (coffer.auth.cache): a logout, revoked key or deactivation made by another process takes
    effect here within this bound (at once in the process that made it). 0: no cache."""
    jwt_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Signing keys by `kid`, e.g. {"2026-11": "..."}; the newest-sorting kid signs, all verify.
    Empty: one key derived from COFFER_SECRET_KEY."""
    data_encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """AES-GCM keys for secrets at rest (TOTP secrets), by id; the newest-sorting id encrypts,
    all decrypt. Each value is hashed to 256 bits. Empty: one key derived from
    COFFER_SECRET_KEY."""
    encryption_key: SecretStr | None = None
    """A single AES-GCM key (id `primary`), the simple form of COFFER_DATA_ENCRYPTION_KEYS;
    both may be set (then `primary` is one of the keys)."""
    verification_code_ttl_seconds: int = Field(default=600, ge=60, le=86_400)
    verification_code_max_attempts: int = Field(default=5, ge=1, le=20)
    """Wrong guesses after which a sign-up or reset code is dead (a new one must be sent)."""
    verification_code_max_sends_per_hour: int = Field(default=5, ge=1, le=100)
    """Codes one user may be sent per purpose per hour: each resend restarts the attempts, so
    without a cap resending would hand out unlimited guesses."""
    step_up_ttl_seconds: int = Field(default=600, ge=30, le=86_400)
    """How long a fresh proof (password or TOTP, `POST /auth/step-up`) unlocks sensitive actions
    (API keys, 2FA on/off, email, phone and password changes, payout destinations)."""
    two_factor_challenge_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    """How long the password step of a 2FA login stays good for the code step."""
    login_rate_limit_per_account: str = "10/minute"
    """`limits` notation. Password attempts (login, password change, deactivate) per account."""
    login_rate_limit_per_ip: str = "60/minute"
    code_rate_limit_per_account: str = "10/minute"
    """Attempts at 6-digit and TOTP codes (verify, reset confirm, 2FA) per account."""
    code_rate_limit_per_ip: str = "60/minute"
    email_rate_limit_per_account: str = "5/hour"
    """Code emails (sign-up, resend, password reset) per address, so nobody is mail-bombed."""
    email_rate_limit_per_ip: str = "30/hour"
    recipient_lookup_misses_per_principal: str = "20/hour"
    """Transfers by email or phone that find nobody, per user or API key: past it, every
    transfer by email or phone answers 429 until the window moves (no probing for accounts)."""
    google_client_id: str | None = None
    """Unset: Google sign-in answers 404 `provider_not_configured`."""
    google_client_secret: SecretStr | None = None
    google_redirect_uri: str | None = None
    """Registered with Google, e.g. https://wallet.example.com/api/v1/auth/google/callback."""
    google_issuer: str = "https://accounts.google.com"
    """Discovered through `<issuer>/.well-known/openid-configuration`."""
    google_http_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    oauth_state_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    """How long a user may take at the provider between `/auth/google` and the callback."""
    # Email (the identity codes are its first users)
    smtp_url: SecretStr | None = None
    """`smtp://[user:password@]host:port` (or `smtps://` for implicit TLS). Unset: emails are
    printed to standard output, so `make run` works offline."""
    smtp_starttls: bool = False
    """Upgrade an `smtp://` connection with STARTTLS before sending credentials or mail."""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    email_from: str = "coffer <no-reply@coffer.localhost>"

    # Text messages (phone verification codes)
    sms_backend: SmsBackend = SmsBackend.LOG
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    """The sending number (E.164); or set COFFER_TWILIO_MESSAGING_SERVICE_SID instead."""
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    sms_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    # API keys, wallets, FX (issue 4)
    fx_provider: FxProviderName = FxProviderName.FIXED
    fx_api_key: SecretStr | None = None
    """ExchangeRate-API key; required with COFFER_FX_PROVIDER=exchangerate_api."""
    fx_base_url: str = "https://v6.exchangerate-api.com"
    fx_base_currency: str = "USD"
    """The pivot: one request fetches every rate against it; cross rates go through it."""
    fx_refresh_interval_seconds: int = Field(default=3600, ge=60, le=86_400)
    fx_max_age_seconds: int = Field(default=6 * 3600, ge=60)
    """A cached rate not refreshed for this long is refused (422 fx_rate_stale)."""
    fx_max_jump_bps: int = Field(default=2000, ge=1, le=1_000_000)
    """A fetched rate this far from the cached one (2000 bps = 20%) is refused, logged
    (`fx.rate_jump_refused`) and held until `coffer fx confirm-rate --currency X`."""
    fx_max_response_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    """The provider's answer is cut off, and refused, past this size, while it streams."""
    fx_quote_ttl_seconds: int = Field(default=60, ge=10, le=3600)
    fx_spread_bps: int = Field(default=0, ge=0, le=1000)
    """Taken from the sent amount of a cross-currency transfer into system:fees:<ccy>
    (100 bps = 1%)."""
    daily_transfer_limit: Decimal = Field(default=Decimal("100.00"), gt=0)
    daily_withdrawal_limit: Decimal = Field(default=Decimal("100.00"), gt=0)
    limits_currency: str = "USD"
    """The currency the daily limits are written in; converted to each wallet's currency."""
    limits_timezone: str = "UTC"
    """IANA zone whose midnight starts a new limit day."""
    api_key_rate_limit_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    """Requests one API key may make per minute (moving window) before 429 `rate_limited`.
    Counted in memory per process, or in Redis, shared by every process, when COFFER_REDIS_URL
    is set."""
    idempotency_ttl_hours: int = Field(default=24, ge=24, le=24 * 30)
    """How long a stored Idempotency-Key response is replayed (DESIGN.md §6: at least 24 h)."""
    max_wallets_per_user: int = Field(default=3, ge=1, le=20)
    supported_currencies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["NGN", "USD", "EUR", "GBP"]
    )
    """Currencies users may open wallets in: `NGN,USD` or a JSON list."""
    clock_offset_seconds: int = Field(default=0, ge=-(10**9), le=10**9)
    """Test only: shifts coffer's clock (`coffer.kit.clock.utcnow`) by this much, so an
    end-to-end test can let API keys expire. Refused unless COFFER_ENV=test."""

    # Admin policy and fees (issue 15)
    user_deposits_enabled: bool = True
    """False: only admins put money in (seed 002); users' deposit routes refuse."""
    monthly_fee: Annotated[dict[str, Decimal], NoDecode] = Field(default_factory=dict)
    """Maintenance fee per wallet currency, e.g. {"KZT": "200.00"}; first due 30 days after a
    wallet opens, then every 30 days. Empty: no fee."""
    monthly_fee_since: datetime | None = None
    """Periods due before this moment are waived, never charged: set it to when the fee is
    turned on, or wallets opened long before are charged every period since they opened."""
    fee_charge_interval_seconds: int = Field(default=3600, ge=1, le=86_400)
    """How often the `fees.charge` job looks for wallets whose fee is due."""
    fee_batch_size: int = Field(default=500, ge=1, le=5000)

    # Live events (issue 16)
    events_retention_seconds: int = Field(default=7 * 86_400, ge=60, le=90 * 86_400)
    """Events older than this are deleted (`notifications.purge_events`); a websocket resuming
    from `last_event_id` gets what it missed within this window."""
    events_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often each API process reads new events when no commit woke it: the bound on
    delivery delay for an event whose wake-up (in-process, or Redis pub/sub) was lost."""
    ws_auth_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """A websocket that has not authenticated within this long is closed (4401)."""
    ws_heartbeat_interval_seconds: float = Field(default=25.0, gt=0, le=3600)
    """How often an idle websocket is sent `{"type": "heartbeat"}`."""
    ws_recheck_interval_seconds: float = Field(default=5.0, gt=0, le=600)
    """How often an open websocket re-checks its credential: a socket of a revoked session or
    a revoked or expired key is closed within this long."""
    ws_max_connections: int = Field(default=10_000, ge=1, le=1_000_000)
    """Open websockets per API process at most; one more is refused (1013, try again later)."""

    # Jobs
    worker_mode: WorkerMode = WorkerMode.EMBEDDED
    broker_url: str | None = None
    """`redis://...` or `amqp://...`: scaled mode. Jobs run on Celery workers (`coffer worker`,
    `coffer beat`), the API publishes outbox rows to the broker, and no API process runs jobs.
    Unset: the database runner (embedded or `coffer worker`)."""
    celery_queue: str = Field(default="coffer", min_length=1, max_length=100)
    """The broker queue every job message goes through."""
    outbox_redeliver_after_seconds: int = Field(default=120, ge=1, le=86_400)
    """A published job no worker finished within this long is published again (the sweeper)."""
    outbox_sweep_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often beat sweeps the outbox for rows to publish (late, delayed or lost)."""
    transfer_batch_size: int = Field(default=200, ge=1, le=5000)
    job_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often an idle job runner looks for due job rows it was not woken for (rows another
    process enqueued)."""
    job_recheck_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the transfer processor and the webhook fan-out run unprompted: the bound on
    the delay of an event's webhooks, and the safety net for pending transfers whose job was
    lost. Apart from the poll, so a fast poll does not settle an empty queue 20 times a
    second."""
    transfer_settle_interval_seconds: float = Field(default=0.1, ge=0, le=10)
    """The shortest time between the starts of two transfer processor runs in one database
    job runner while transfers keep arriving (each run settles everything then pending): the
    most it adds to a transfer's settlement. Intake enqueues a processor job with every batch
    it commits; run back to back, a run settled a transfer or two and spent 6 ms of a worker's
    CPU per transfer at 100/s, spaced 0.1 s apart 2.7 ms (issue 13). 0 runs each at once.
    Celery workers run each processor job as it arrives."""
    job_max_attempts: int = Field(default=10, ge=1, le=100)
    job_lease_seconds: float = Field(default=30.0, ge=0.3, le=600)
    """How long a claimed job stays reserved without a heartbeat; renewed every third of it
    while the job runs, so a job whose worker died is free again within this time."""

    # Outbound webhooks (issue 16)
    webhooks_allow_private_targets: bool = False
    """Let webhook endpoints resolve to loopback and private addresses (tests and local
    development only; refused in production). Link-local, metadata, multicast and unspecified
    addresses stay refused even then."""
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """One delivery attempt's whole budget: connecting, sending and reading the answer."""
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0, le=1024 * 1024)
    """Of a receiver's answer, at most this much is read; the rest is dropped unread."""
    webhook_delivery_concurrency: int = Field(default=8, ge=1, le=100)
    """Deliveries one database job runner makes at once, beside (never ahead of) other jobs."""

    # Transfer intake batching (DESIGN.md §11)
    transfer_accept_window_ms: float = Field(default=2.0, ge=0, le=60_000)
    """How long a transfer request arriving at an idle API process waits for others to share
    its transaction (requests arriving while a batch is being stored wait for that one
    instead). 0 turns batching off: each request is stored in its own transaction."""
    transfer_accept_max_batch: int = Field(default=256, ge=1, le=5000)
    """Requests stored in one transaction at most; a full batch goes without waiting."""

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value is not None and value.split("://", 1)[0] not in BROKER_SCHEMES:
            raise ValueError(f"COFFER_BROKER_URL must start with one of {sorted(BROKER_SCHEMES)}")
        return value

    @field_validator("supported_currencies", "cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [code for code in (part.strip() for part in value.split(",")) if code]
        return value

    @field_validator("supported_currencies")
    @classmethod
    def _known_currencies(cls, value: list[str]) -> list[str]:
        codes = list(dict.fromkeys(code.upper() for code in value))
        unknown = [code for code in codes if code not in CURRENCIES]
        if unknown or not codes:
            raise ValueError(f"unknown or no currencies: {unknown}; known: {sorted(CURRENCIES)}")
        return codes

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, _, host = origin.partition("://")
            if scheme not in ("http", "https") or not host or "/" in host or origin == "*":
                raise ValueError(f"COFFER_CORS_ORIGINS: {origin!r} is not an origin")
        return value

    @property
    def serves_docs(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.env is not Environment.PRODUCTION

    @field_validator("monthly_fee", mode="before")
    @classmethod
    def _empty_fee_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("monthly_fee")
    @classmethod
    def _fees_fit_their_currency(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, amount in value.items():
            if code not in CURRENCIES:
                raise ValueError(f"COFFER_MONTHLY_FEE: unknown currency {code!r}")
            parse_amount(amount, CURRENCIES[code])
        return value

    @property
    def is_live_mode(self) -> bool:
        """Real money moves: production with a real payment provider. Everything else (any
        non-production environment, or the built-in sandbox provider) is test mode, which
        issues `sk_test_` API keys."""
        return self.env is Environment.PRODUCTION and self.payment_provider != "sandbox"

    @model_validator(mode="after")
    def _refuse_clock_offset_outside_tests(self) -> Self:
        # A shifted clock would expire keys and sessions early or late: never outside tests.
        if self.clock_offset_seconds and self.env is not Environment.TEST:
            raise ValueError("COFFER_CLOCK_OFFSET_SECONDS is only allowed with COFFER_ENV=test")
        return self

    @model_validator(mode="after")
    def _check_fx_and_limits(self) -> Self:
        for name in ("fx_base_currency", "limits_currency"):
            if getattr(self, name) not in CURRENCIES:
                raise ValueError(f"COFFER_{name.upper()}: unknown currency {getattr(self, name)!r}")
        try:
            ZoneInfo(self.limits_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            zone = self.limits_timezone
            raise ValueError(f"COFFER_LIMITS_TIMEZONE: unknown zone {zone!r}") from exc
        if self.fx_provider is FxProviderName.EXCHANGERATE_API and not (
            self.fx_api_key and self.fx_api_key.get_secret_value()
        ):
            raise ValueError(
                "COFFER_FX_API_KEY is required with COFFER_FX_PROVIDER=exchangerate_api"
            )
        return self

    @field_validator(
        "login_rate_limit_per_account",
        "login_rate_limit_per_ip",
        "code_rate_limit_per_account",
        "code_rate_limit_per_ip",
        "email_rate_limit_per_account",
        "email_rate_limit_per_ip",
        "rate_limit_per_ip",
        "rate_limit_per_user",
        "failed_auth_limit_per_ip",
        "recipient_lookup_misses_per_principal",
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        limits.parse(value)
        return value

    @field_validator("provider_by_currency")
    @classmethod
    def _upper_currency_codes(cls, value: dict[str, str]) -> dict[str, str]:
        upper = {code.upper(): name.strip().lower() for code, name in value.items()}
        unknown = [code for code in upper if code not in CURRENCIES]
        if unknown:
            raise ValueError(f"COFFER_PROVIDER_BY_CURRENCY: unknown currencies {unknown}")
        return upper

    @property
    def payment_providers_in_use(self) -> set[str]:
        """Every provider that serves some currency."""
        return {self.payment_provider.strip().lower(), *self.provider_by_currency.values()}

    @model_validator(mode="after")
    def _google_needs_its_whole_configuration(self) -> Self:
        if self.google_client_id and not (self.google_client_secret and self.google_redirect_uri):
            raise ValueError(
                "COFFER_GOOGLE_CLIENT_ID needs COFFER_GOOGLE_CLIENT_SECRET and "
                "COFFER_GOOGLE_REDIRECT_URI"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Self:
        # A known secret signs tokens anyone can forge, so production must bring its own.
        if self.env is Environment.PRODUCTION:
            secret = self.secret_key.get_secret_value()
            if secret == DEVELOPMENT_SECRET_KEY or len(secret) < 32:
                raise ValueError(
                    "COFFER_SECRET_KEY must be set to a random value of at least 32 characters "
                    "in production"
                )
            # Without SMTP, sign-up and reset codes would be printed where log readers see them
            # and no user would ever receive one.
            if self.smtp_url is None:
                raise ValueError("COFFER_SMTP_URL must be set in production")
            # Deliveries to loopback or private addresses would reach the operator's own
            # network (databases, admin panels) on a user's say-so.
            if self.webhooks_allow_private_targets:
                raise ValueError(
                    "COFFER_WEBHOOKS_ALLOW_PRIVATE_TARGETS is not allowed in production"
                )
            # The same holds for phone codes printed by the log backend.
            if self.sms_backend is SmsBackend.LOG:
                raise ValueError("COFFER_SMS_BACKEND=log is not allowed in production")
        return self

    @model_validator(mode="after")
    def _twilio_needs_its_whole_configuration(self) -> Self:
        if self.sms_backend is SmsBackend.TWILIO and not (
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from_number or self.twilio_messaging_service_sid)
        ):
            raise ValueError(
                "COFFER_SMS_BACKEND=twilio needs COFFER_TWILIO_ACCOUNT_SID, "
                "COFFER_TWILIO_AUTH_TOKEN and COFFER_TWILIO_FROM_NUMBER (or "
                "COFFER_TWILIO_MESSAGING_SERVICE_SID)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_missing_provider_secrets_in_production(self) -> Self:
        # An empty webhook secret would verify an empty signature (the providers refuse every
        # delivery instead, so deposits would never complete): refuse to start in production.
        if self.env is not Environment.PRODUCTION:
            return self
        required = {
            "paystack": ("paystack_secret_key",),
            "stripe": ("stripe_secret_key", "stripe_webhook_secret"),
        }
        in_use = {self.payment_provider.strip().lower(), *self.provider_by_currency.values()}
        for provider in sorted(in_use):
            for name in required.get(provider, ()):
                if not getattr(self, name).get_secret_value():
                    raise ValueError(
                        f"COFFER_{name.upper()} must be set in production: {provider} serves "
                        "a currency (COFFER_PAYMENT_PROVIDER / COFFER_PROVIDER_BY_CURRENCY)"
                    )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
