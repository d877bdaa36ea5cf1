"""`coffer check bank`: a Jepsen-style bank workload against a coffer of its own.

It starts a private PostgreSQL cluster and coffer's processes on it, drives seeded transfers
through the HTTP API while a seeded schedule of faults hits them, lets everything settle, then
checks from the outside that no money was created, destroyed, lost or applied twice.
"""

FAULTS = ("kill-api", "kill-worker", "restart-db", "drop-broker", "slow-db")
"""Here, not in coffer.check.faults, so the CLI names them without importing the checker."""
