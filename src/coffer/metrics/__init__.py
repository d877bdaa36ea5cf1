"""Prometheus metrics: HTTP requests by route and status, and the outbox by job and status."""
