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

    # Identity and sessions (issue 3)
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=300)
    session_idle_timeout_seconds: int = Field(default=7 * 86_400, ge=30)
    """A session with no authenticated request for this long is logged out (30 for strict)."""
    jwt_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Signing keys by `kid`, e.g. {"2026-11": "..."}; the newest-sorting kid signs, all verify.
    Empty: one key derived from COFFER_SECRET_KEY."""
    data_encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """AES-GCM keys for secrets at rest (TOTP secrets), by id; the newest-sorting id encrypts,
    all decrypt. Each value is hashed to 256 bits. Empty: one key derived from
    COFFER_SECRET_KEY."""
    verification_code_ttl_seconds: int = Field(default=600, ge=60, le=86_400)
    verification_code_max_attempts: int = Field(default=5, ge=1, le=20)
    """Wrong guesses after which a sign-up or reset code is dead (a new one must be sent)."""
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

    # Jobs
    worker_mode: WorkerMode = WorkerMode.EMBEDDED
    transfer_batch_size: int = Field(default=200, ge=1, le=5000)
    job_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    job_max_attempts: int = Field(default=10, ge=1, le=100)

    # Transfer intake batching (DESIGN.md §11)
    transfer_accept_window_ms: float = Field(default=2.0, ge=0, le=60_000)
    """How long a transfer request arriving at an idle API process waits for others to share
    its transaction (requests arriving while a batch is being stored wait for that one
    instead). 0 turns batching off: each request is stored in its own transaction."""
    transfer_accept_max_batch: int = Field(default=256, ge=1, le=5000)
    """Requests stored in one transaction at most; a full batch goes without waiting."""

    @field_validator("supported_currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: Any) -> Any:
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
    )
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        limits.parse(value)
        return value

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
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
