"""Webhook fixtures: real HTTP receivers in the test process, the app allowed to deliver to
them (they listen on loopback), and the job runner that fans events out and delivers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from coffer.db import Database
from coffer.jobs.runner import JobRunner
from coffer.settings import Settings
from tests.fixtures.factories import fund
from tests.fixtures.http import API, Caller
from tests.fixtures.identity import Mailbox

RECEIVER_WAIT_SECONDS = 60


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers from a script: the next status in
    `statuses` (then 200), after waiting for `release` when it is set up to hold."""

    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    body: bytes = b""
    endless: bool = False
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def start(self) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with state.arrived:
                    state.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    state.arrived.notify_all()
                    status = state.statuses.pop(0) if state.statuses else 200
                if state.hold is not None:
                    state.hold.wait(RECEIVER_WAIT_SECONDS)
                # The sender may have given up (timeout, size cap): its socket is gone.
                with contextlib.suppress(OSError):
                    self._answer(status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                for name, value in state.headers.items():
                    self.send_header(name, value)
                if state.endless:
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    chunk = b"x" * 65536
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.send_header("content-length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int) -> list[Received]:
        with self.arrived:
            assert self.arrived.wait_for(
                lambda: len(self.received) >= count, timeout=RECEIVER_WAIT_SECONDS
            ), f"the receiver got {len(self.received)} of {count} deliveries"
            return list(self.received)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


MakeReceiver = Callable[..., Receiver]


@pytest.fixture
def make_receiver() -> Iterator[MakeReceiver]:
    started: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        receiver = Receiver(**options)
        receiver.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.close()


@pytest.fixture
def receiver(make_receiver: MakeReceiver) -> Receiver:
    return make_receiver()


@pytest.fixture
def app_settings(database_url: str, mailbox: Mailbox) -> Settings:
    """The app may deliver to loopback (the receivers); emails go to the test SMTP server."""
    return Settings(
        database_url=database_url,
        worker_mode="external",
        database_pool_size=3,
        webhooks_allow_private_targets=True,
        smtp_url=mailbox.url,
    )


RunJobs = Callable[..., Awaitable[None]]


@pytest.fixture
def run_jobs(app_database: Database, app_settings: Settings) -> RunJobs:
    """Run due jobs (fan-out, deliveries, emails) until none is due, like the worker."""

    async def run(**overrides: Any) -> None:
        runner = JobRunner(app_database, app_settings.model_copy(update=overrides))
        while await runner.run_once():
            pass

    return run


def independent_signatures(secret: str, headers: dict[str, str], body: bytes) -> list[bool]:
    """The Standard Webhooks check written from the specification, not from coffer's code:
    for each `v1,` entry of webhook-signature, whether it is the base64 HMAC-SHA256 of
    `{webhook-id}.{webhook-timestamp}.{body}` under the base64-decoded secret."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode()
    expected = base64.b64encode(hmac.new(key, signed + b"." + body, hashlib.sha256).digest())
    results = []
    for entry in headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        results.append(version == "v1" and hmac.compare_digest(signature.encode(), expected))
    return results


CreateEndpoint = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def create_endpoint(client: httpx.AsyncClient) -> CreateEndpoint:
    async def create(caller: Caller, url: str, events: list[str] | None = None) -> dict[str, Any]:
        response = await client.post(
            f"{API}/webhook-endpoints",
            json={"url": url, "events": events or ["balance.updated"]},
            headers=caller.headers,
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    return create


Credit = Callable[[Caller, int], Awaitable[None]]


@pytest.fixture
def credit(app_database: Database) -> Credit:
    """Move money into the caller's wallet: one ledger entry, one `balance.updated` event."""

    async def run(caller: Caller, minor: int) -> None:
        async with app_database.transaction() as session:
            await fund(session, caller.created.primary_wallet, minor)

    return run


@pytest.fixture
async def caller(sign_in: Callable[..., Awaitable[Caller]]) -> Caller:
    return await sign_in()
