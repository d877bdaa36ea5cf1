"""Test configuration: real SQLite and PostgreSQL databases for every test that asks.

Tests that take `database` (or `database_url`) run twice, once per backend. PostgreSQL comes
from COFFER_TEST_POSTGRES_URL (default: the local server); outside CI a missing server skips
those tests with a visible reason, under CI=true it fails them.
"""

from __future__ import annotations

import os

# Settings are read once per process: make the test profile the default before coffer loads.
os.environ.setdefault("COFFER_ENV", "test")
os.environ.setdefault("COFFER_PASSWORD_HASH_MEMORY_KIB", "1024")
os.environ.setdefault("COFFER_PASSWORD_HASH_ITERATIONS", "1")
os.environ.setdefault("COFFER_LOG_JSON", "true")

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.fx",
    "tests.fixtures.http",
    "tests.fixtures.sms",
    "tests.fixtures.identity",
    "tests.fixtures.oidc",
    "tests.fixtures.paystack",
    "tests.fixtures.stripe",
    "tests.fixtures.browser",
]
