"""`/metrics`: requests counted under their route template, and the outbox gauges."""

from __future__ import annotations

import httpx

from coffer.db import Database
from coffer.jobs.outbox import enqueue


async def test_metrics_count_requests_by_route_template_and_show_the_outbox(
    client: httpx.AsyncClient, app_database: Database
) -> None:
    async with app_database.transaction() as session:
        await enqueue(session, "tests.metrics.waiting")
    await client.get("/api/v1/wallets/0000000000000/transactions")

    body = (await client.get("/metrics")).text

    assert (
        'coffer_http_requests_total{method="GET",'
        'route="/wallets/{wallet_number}/transactions",status="401"}'
    ) in body
    assert "0000000000000" not in body
    assert 'coffer_outbox_jobs{job="tests.metrics.waiting",status="pending"}' in body
