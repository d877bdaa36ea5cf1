"""Which provider serves which currency, built once per process from settings.

COFFER_PROVIDER_BY_CURRENCY names a provider per currency; every other currency uses
COFFER_PAYMENT_PROVIDER. Real providers are imported by name when first built, so a provider
whose module or settings are missing fails at startup with a configuration error (never as a
500 on some later request).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from coffer.db import Database
from coffer.errors import AppError
from coffer.payments.providers.base import PaymentProvider, ProviderName
from coffer.settings import Environment, Settings

_CLASSES = {
    ProviderName.PAYSTACK: ("coffer.payments.providers.paystack", "PaystackProvider"),
    ProviderName.STRIPE: ("coffer.payments.providers.stripe", "StripeProvider"),
}


class ProviderConfigError(Exception):
    """The payment configuration cannot work: raised at startup, with what to change."""


class ProviderNotConfigured(AppError):
    code = "provider_not_configured"
    http_status = 404
    default_message = "This payment provider is not configured"


def _build(name: ProviderName, settings: Settings, database: Database) -> PaymentProvider:
    if name is ProviderName.SANDBOX:
        if settings.env is Environment.PRODUCTION and not settings.sandbox_in_production:
            raise ProviderConfigError(
                "The sandbox payment provider is refused in production: configure a real "
                "provider, or set COFFER_SANDBOX_IN_PRODUCTION=true"
            )
        from coffer.payments.providers.sandbox import SandboxProvider

        return SandboxProvider(settings, database)
    module_name, class_name = _CLASSES[name]
    try:
        module = importlib.import_module(module_name)
        provider: PaymentProvider = getattr(module, class_name)(settings)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise ProviderConfigError(f"payment provider {name!r} cannot be built: {error}") from error
    return provider


class ProviderRegistry:
    """The configured providers, by name and by currency."""

    def __init__(self, settings: Settings, database: Database) -> None:
        try:
            self.default = ProviderName(settings.payment_provider.strip().lower())
            self.by_currency: Mapping[str, ProviderName] = {
                currency: ProviderName(name)
                for currency, name in settings.provider_by_currency.items()
            }
        except ValueError as error:
            known = ", ".join(name.value for name in ProviderName)
            raise ProviderConfigError(
                f"unknown payment provider ({error}); known: {known}"
            ) from error
        names = {self.default, *self.by_currency.values()}
        self._providers = {name: _build(name, settings, database) for name in sorted(names)}

    def for_currency(self, currency: str) -> PaymentProvider:
        return self._providers[self.by_currency.get(currency, self.default)]

    def get(self, name: str) -> PaymentProvider:
        """The provider named on a stored deposit or withdrawal, or of a webhook route."""
        try:
            provider = self._providers.get(ProviderName(name))
        except ValueError:
            provider = None
        if provider is None:
            raise ProviderNotConfigured(f"The payment provider {name!r} is not configured")
        return provider

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


_REGISTRIES: dict[int, tuple[Database, ProviderRegistry]] = {}


def providers_for(database: Database, settings: Settings) -> ProviderRegistry:
    """The registry of this database's process (the app, a worker, a CLI command)."""
    held = _REGISTRIES.get(id(database))
    if held is None or held[0] is not database:
        held = (database, ProviderRegistry(settings, database))
        _REGISTRIES[id(database)] = held
    return held[1]


async def close_providers(database: Database) -> None:
    held = _REGISTRIES.pop(id(database), None)
    if held is not None and held[0] is database:
        await held[1].aclose()
