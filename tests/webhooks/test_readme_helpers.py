"""The README's verification helpers, run as written against a real delivery: the Python
function accepts it and refuses it tampered or stale; the openssl commands compute its
signature."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.fixtures.http import Caller
from tests.webhooks.conftest import CreateEndpoint, Credit, Receiver, RunJobs

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
[PYTHON_HELPER] = [
    block
    for block in re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    if "def verify_webhook" in block
]
[OPENSSL_BLOCK] = [
    block for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) if "openssl" in block
]


def _openssl_signature(values: dict[str, str]) -> str:
    """The README's openssl block, run by bash with the delivery's values."""
    return subprocess.run(
        ["bash", "-c", OPENSSL_BLOCK],
        env={"PATH": os.environ["PATH"], **values},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


async def test_the_readme_helpers_verify_a_real_delivery(
    caller: Caller,
    create_endpoint: CreateEndpoint,
    credit: Credit,
    receiver: Receiver,
    run_jobs: RunJobs,
) -> None:
    endpoint = await create_endpoint(caller, receiver.url)
    await credit(caller, 2_500)
    await run_jobs()
    [delivery] = receiver.wait_for(1)
    secret = endpoint["secret"]

    namespace: dict[str, Any] = {}
    exec(compile(PYTHON_HELPER, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    verify = namespace["verify_webhook"]
    assert verify(secret, delivery.headers, delivery.body) is True
    assert verify(secret, delivery.headers, delivery.body.replace(b"25.00", b"99.00")) is False
    an_hour_ago = str(int(delivery.headers["webhook-timestamp"]) - 3600)
    stale = delivery.headers | {"webhook-timestamp": an_hour_ago}
    assert verify(secret, stale, delivery.body) is False
    other_secret = "whsec_" + "A" * 43 + "="
    assert verify(other_secret, delivery.headers, delivery.body) is False

    computed = await asyncio.to_thread(
        _openssl_signature,
        {
            "WEBHOOK_SECRET": secret,
            "WEBHOOK_ID": delivery.headers["webhook-id"],
            "WEBHOOK_TIMESTAMP": delivery.headers["webhook-timestamp"],
            "BODY": delivery.body.decode(),
        },
    )
    assert delivery.headers["webhook-signature"].split(" ") == [f"v1,{computed}"]
