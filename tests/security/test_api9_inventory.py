"""OWASP API9:2023 Improper Inventory Management: the OpenAPI document is the inventory, and
says who may call each route and what each refusal looks like."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import routing

from coffer.app import create_app
from coffer.wallets.numbers import is_valid_wallet_number

PUBLIC = {"/healthz", "/readyz"}
USERS_ONLY = {("post", "/api/v1/keys/create"), ("get", "/api/v1/me")}
BOTH = {("get", "/api/v1/wallet/balance"), ("post", "/api/v1/wallet/transfer")}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_both_credentials_are_declared_as_security_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyAuth"] == {
        **schemes["apiKeyAuth"],
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }


def test_each_route_names_the_credentials_it_accepts(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        security = operation.get("security")
        if (method, path) in USERS_ONLY:
            assert security == [{"bearerAuth": []}], path
        if (method, path) in BOTH:
            assert security == [{"bearerAuth": []}, {"apiKeyAuth": []}], path
        if path in PUBLIC or path.startswith("/api/v1/auth/register"):
            assert security is None, path


def test_every_error_response_is_the_envelope_with_its_codes(document: dict[str, Any]) -> None:
    for _, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, status)
            assert "`error.code` is one of" in response["description"], (path, status)


def test_routes_that_take_a_body_declare_the_body_refusals(document: dict[str, Any]) -> None:
    for _, path, operation in _operations(document):
        if "requestBody" in operation:
            assert "`payload_too_large`" in operation["responses"]["413"]["description"], path
            assert "`json_too_deep`" in operation["responses"]["422"]["description"], path


def test_every_served_route_is_in_the_document(document: dict[str, Any]) -> None:
    app = create_app()
    served = {
        (method.lower(), route.path_format)
        for route in routing.iter_route_contexts(app.routes)
        if isinstance(route.original_route, routing.APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    documented = {(method, path) for method, path, _ in _operations(document)}
    assert served == documented


def _examples(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("examples", "example") and key:
                yield from (
                    (key, example) for example in (value if isinstance(value, list) else [value])
                )
            else:
                yield from _examples(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _examples(item, key)


def test_example_wallet_numbers_pass_their_own_check_digit(document: dict[str, Any]) -> None:
    numbers = [example for key, example in _examples(document) if "wallet_number" in key]
    assert numbers
    assert all(is_valid_wallet_number(number) for number in numbers), numbers
