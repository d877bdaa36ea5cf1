"""Password reset by emailed code, and the profile at /me."""

from __future__ import annotations

from tests.fixtures.identity import PASSWORD, Api, bearer, new_email

NEW_PASSWORD = "walnut-lantern-meadow-3"


async def confirm(api: Api, address: str, code: str, password: str = NEW_PASSWORD) -> dict:
    response = await api.client.post(
        "/auth/password/reset/confirm",
        json={"email": address, "code": code, "new_password": password},
    )
    return {**response.json(), "status": response.status_code}


async def test_password_reset_by_code_ends_every_session(api: Api) -> None:
    address = await api.sign_up()
    signed_in = await api.login(address)
    response = await api.client.post("/auth/password/reset/request", json={"email": address})
    assert response.status_code == 202
    code = await api.code_for(address)
    [*_, message] = api.mailbox.to(address)
    assert "password reset" in str(message["Subject"])
    assert code in message.get_content()

    assert (await confirm(api, address, code))["status"] == 200
    me = await api.client.get("/me", headers=bearer(signed_in["access_token"]))
    assert (me.status_code, me.json()["error"]["code"]) == (401, "session_expired")
    old = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert old.status_code == 401
    await api.login(address, NEW_PASSWORD)
    assert (await confirm(api, address, code))["error"]["code"] == "invalid_code"


async def test_reset_request_answers_alike_for_unknown_accounts_and_sends_nothing(
    api: Api,
) -> None:
    address = await api.sign_up()
    unknown = new_email()
    known = await api.client.post("/auth/password/reset/request", json={"email": address})
    missing = await api.client.post("/auth/password/reset/request", json={"email": unknown})
    assert (known.status_code, known.json()) == (missing.status_code, missing.json())
    await api.deliver_email()
    assert api.mailbox.to(unknown) == []
    assert (await confirm(api, unknown, "123456"))["error"]["code"] == "invalid_code"


async def test_reset_codes_allow_five_guesses(api: Api) -> None:
    address = await api.sign_up()
    await api.client.post("/auth/password/reset/request", json={"email": address})
    code = await api.code_for(address)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert (await confirm(api, address, wrong))["error"]["code"] == "invalid_code"
    assert (await confirm(api, address, code))["error"]["code"] == "code_attempts_exceeded"
    await api.login(address)


async def test_reset_refuses_a_weak_password_without_spending_the_code(api: Api) -> None:
    address = await api.sign_up()
    await api.client.post("/auth/password/reset/request", json={"email": address})
    code = await api.code_for(address)
    weak = await confirm(api, address, code, "1234567890")
    assert (weak["status"], weak["error"]["code"]) == (422, "weak_password")
    assert (await confirm(api, address, code))["status"] == 200


async def test_a_reset_proves_the_address_of_an_unverified_sign_up(api: Api) -> None:
    # Someone registered this address and never confirmed it; its owner resets the password.
    address, _ = await api.register()
    await api.client.post("/auth/password/reset/request", json={"email": address})
    code = await api.code_for(address)
    assert (await confirm(api, address, code))["status"] == 200
    data = await api.login(address, NEW_PASSWORD)
    assert data["user"]["wallet_number"]


async def test_profile_shows_and_updates_the_user(api: Api) -> None:
    data = await api.signed_in(first_name="Ada", last_name="Obi")
    headers = bearer(data["access_token"])
    me = (await api.client.get("/me", headers=headers)).json()["data"]
    assert me["first_name"] == "Ada"
    assert me["role"] == "user"
    assert me["two_factor_enabled"] is False
    assert me["primary_wallet_number"] == data["user"]["wallet_number"]
    assert me["created_at"].endswith("Z")
    assert set(me) == {
        "id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "role",
        "is_verified",
        "pending_email",
        "pending_phone",
        "two_factor_enabled",
        "primary_wallet_number",
        "profile_image_url",
        "created_at",
    }

    response = await api.client.patch(
        "/me",
        headers=headers,
        json={"first_name": "Adaeze", "profile_image_url": "https://img.example.com/a.png"},
    )
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["first_name"] == "Adaeze"
    assert updated["last_name"] == "Obi"
    assert updated["profile_image_url"] == "https://img.example.com/a.png"

    cleared = await api.client.patch("/me", headers=headers, json={"profile_image_url": None})
    assert cleared.json()["data"]["profile_image_url"] is None
    assert cleared.json()["data"]["first_name"] == "Adaeze"


async def test_profile_images_must_be_https(api: Api) -> None:
    data = await api.signed_in()
    headers = bearer(data["access_token"])
    for url in ("http://img.example.com/a.png", "javascript:alert(1)", "https://" + "a" * 2100):
        response = await api.client.patch("/me", headers=headers, json={"profile_image_url": url})
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "validation_error",
        )
    for body in ({"email": "x@example.com"}, {"role": "admin"}, {"first_name": ""}):
        response = await api.client.patch("/me", headers=headers, json=body)
        assert response.status_code == 422
