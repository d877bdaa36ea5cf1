"""The application through its real ASGI stack: envelopes, probes, request ids, errors."""

from __future__ import annotations

import asyncio
import gc
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from coffer.app import create_app
from coffer.kit.heap import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD
from coffer.migrate import alembic_config
from coffer.settings import DEVELOPMENT_SECRET_KEY, Settings

SECRET_LOOKING_VALUE = "sk_live_9f8e7d6c5b4a-DO-NOT-ECHO"


def _app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, worker_mode="external"))


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """An app for behaviour that never reaches the database (the engine is never connected)."""
    return _app(f"sqlite:///{tmp_path / 'unused.db'}")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _assert_error_envelope(body: dict[str, object], status_code: int, code: str) -> None:
    assert body["status"] == "error"
    assert body["status_code"] == status_code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["data"] is None
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code


def test_healthz_answers_with_the_success_envelope(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "status_code": 200,
        "message": "ok",
        "data": {"status": "ok"},
    }


def test_readyz_is_ready_on_a_migrated_database(database_url: str) -> None:
    with TestClient(_app(database_url)) as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"] == {"status": "ready", "broker": "not_configured"}


def test_readyz_is_unavailable_on_an_unmigrated_database(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    with TestClient(_app(fresh_database_url(migrate=False))) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    _assert_error_envelope(response.json(), 503, "service_unavailable")


def test_readyz_is_unavailable_while_migrations_are_pending(
    backend: str, fresh_database_url: Callable[..., str]
) -> None:
    url = fresh_database_url()
    command.downgrade(alembic_config(url), "base")  # the version table stays, empty

    with TestClient(_app(url)) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    _assert_error_envelope(body, 503, "service_unavailable")
    assert body["error"]["details"] is None


def test_unknown_route_is_a_not_found_envelope(client: TestClient) -> None:
    response = client.get("/no/such/route")

    assert response.status_code == 404
    _assert_error_envelope(response.json(), 404, "not_found")


def test_wrong_method_is_a_method_not_allowed_envelope(client: TestClient) -> None:
    response = client.post("/healthz")

    assert response.status_code == 405
    _assert_error_envelope(response.json(), 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_unhandled_exception_is_a_500_envelope_without_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    app = _app(f"sqlite:///{tmp_path / 'unused.db'}")
    leaked_detail = f"kaboom-{uuid.uuid4().hex}"

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(leaked_detail)

    with TestClient(app) as client:
        response = client.get("/boom", headers={"X-Request-ID": "boom-request-1"})

    assert response.status_code == 500
    _assert_error_envelope(response.json(), 500, "internal_error")
    assert response.headers["x-request-id"] == "boom-request-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "Traceback" not in response.text
    assert leaked_detail not in response.text

    captured = capfd.readouterr()
    logs = captured.err + captured.out
    # The failure is logged (so the capture is real), by type and request id only.
    assert "http.unhandled_error" in logs
    assert "RuntimeError" in logs
    assert "boom-request-1" in logs
    assert "Traceback" not in logs
    assert leaked_detail not in logs


def test_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]

    assert first
    assert first != second


def test_request_id_is_echoed_when_sane(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "client-req_42.a"})

    assert response.headers["x-request-id"] == "client-req_42.a"


@pytest.mark.parametrize(
    "hostile",
    ["a" * 200, "abc\ndef", "abc\r\nSet-Cookie: session=stolen", "id with spaces", "<script>"],
    ids=["too-long", "newline", "header-injection", "spaces", "markup"],
)
def test_request_id_is_replaced_when_hostile(hostile: str, app: FastAPI) -> None:
    response = _get_with_raw_request_id(app, "/healthz", hostile.encode("latin-1"))

    assert response["status"] == 200
    request_ids = [value for name, value in response["headers"] if name == b"x-request-id"]
    assert len(request_ids) == 1
    replaced = request_ids[0].decode("latin-1")
    assert replaced != hostile
    assert hostile not in replaced
    assert replaced.isalnum()
    assert len(replaced) <= 64
    assert not any(name == b"set-cookie" for name, _ in response["headers"])


def _get_with_raw_request_id(app: FastAPI, path: str, request_id: bytes) -> dict[str, object]:
    """Drive the ASGI app directly: HTTP clients refuse to send such header values at all."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"x-request-id", request_id)],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    messages: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    return {"status": start["status"], "headers": list(start["headers"])}


def test_openapi_schema_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json")
    docs = client.get("/docs")

    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "coffer"
    assert "/healthz" in schema.json()["paths"]
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


class _Signup(BaseModel):
    email: str
    pin: int


def test_invalid_body_is_a_validation_error_with_field_paths_and_no_values(app: FastAPI) -> None:
    @app.post("/signup")
    async def signup(body: _Signup) -> dict[str, str]:
        return {"email": body.email}

    with TestClient(app) as client:
        response = client.post("/signup", json={"pin": SECRET_LOOKING_VALUE})

    assert response.status_code == 422
    body = response.json()
    _assert_error_envelope(body, 422, "validation_error")
    fields = {detail["field"] for detail in body["error"]["details"]}
    assert fields == {"body.email", "body.pin"}
    assert all(detail["reason"] for detail in body["error"]["details"])
    assert SECRET_LOOKING_VALUE not in response.text


def test_production_settings_refuse_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COFFER_SECRET_KEY", raising=False)
    assert Settings(_env_file=None).secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY

    with pytest.raises(ValidationError, match="COFFER_SECRET_KEY"):
        Settings(_env_file=None, env="production")


def test_production_settings_refuse_a_short_secret() -> None:
    with pytest.raises(ValidationError, match="COFFER_SECRET_KEY"):
        Settings(env="production", secret_key=secrets.token_urlsafe(16))


TWILIO = {
    "sms_backend": "twilio",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "token",
    "twilio_from_number": "+15005550006",
}


def test_production_settings_accept_a_long_random_secret() -> None:
    secret = secrets.token_urlsafe(30)
    assert len(secret) == 40

    settings = Settings(
        env="production", secret_key=secret, smtp_url="smtp://127.0.0.1:25", **TWILIO
    )

    assert settings.secret_key.get_secret_value() == secret


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """The collector as it was: a settled heap must not outlive its test in this process."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_a_served_app_freezes_its_start_up_heap_and_collects_the_young_less_often(
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", worker_mode="external")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        unsettled = (gc.get_freeze_count(), gc.get_threshold()[0])
    with TestClient(create_app(settings, settle_heap_once_started=True)) as client:
        assert client.get("/healthz").status_code == 200
        settled = (gc.get_freeze_count(), gc.get_threshold())

    assert unsettled[0] == 0
    assert unsettled[1] < YOUNG_THRESHOLD
    assert settled[0] > 10_000, "start-up objects were not frozen"
    assert settled[1] == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
