"""Google sign-in against real local OpenID providers: the whole flow with oidc-provider-mock,
and every refusal with the joserfc-signing fake provider."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from coffer.models import User, UserIdentity, Wallet
from tests.fixtures.identity import PASSWORD, Api, MakeApi, bearer, new_email
from tests.fixtures.oidc import (
    CLIENT_ID,
    REDIRECT_URI,
    FakeProvider,
    authorize_at,
    consent_at_fake,
    google_callback,
    google_settings,
    set_mock_user,
    start_google,
)


def google_claims(address: str, *, verified: bool = True) -> dict[str, object]:
    return {
        "email": address,
        "email_verified": verified,
        "given_name": "Grace",
        "family_name": "Hopper",
        "name": "Grace Hopper",
    }


async def sign_in_with_mock(api: Api, issuer: str, subject: str) -> dict:
    location = await start_google(api)
    response = await google_callback(api, await authorize_at(location, subject))
    return {**response.json(), "http_status": response.status_code}


async def test_the_redirect_carries_state_nonce_and_pkce(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        location = await start_google(api)
    parts = urlsplit(location)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert location.startswith(f"{mock_oidc_issuer}/oauth2/authorize?")
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 20


async def test_first_sign_in_creates_a_verified_user_with_a_wallet(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    subject, address = uuid.uuid4().hex, new_email()
    await set_mock_user(mock_oidc_issuer, subject, google_claims(address))
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        body = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert body["http_status"] == 200, body
        data = body["data"]
        assert data["access_token"]
        assert data["refresh_token"]
        user = data["user"]
        assert {"id", "email", "name", "wallet_number"} <= set(user)
        assert user["email"] == address
        assert user["name"] == "Grace Hopper"
        assert user["wallet_number"]
        me = await api.client.get("/me", headers=bearer(data["access_token"]))
        assert me.json()["data"]["is_verified"] is True

        again = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert again["data"]["user"]["id"] == user["id"]
        async with api.app.state.database.transaction() as session:
            wallets = (
                await session.execute(select(Wallet).where(Wallet.user_id == uuid.UUID(user["id"])))
            ).all()
        assert len(wallets) == 1


async def test_sign_in_links_an_existing_account_by_verified_email(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    subject = uuid.uuid4().hex
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        address = await api.sign_up()
        password_user = await api.login(address)
        await set_mock_user(mock_oidc_issuer, subject, google_claims(address.upper()))
        body = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert body["http_status"] == 200, body
        assert body["data"]["user"]["id"] == password_user["user"]["id"]
        await api.login(address)
        async with api.app.state.database.transaction() as session:
            identity = (
                await session.execute(select(UserIdentity).where(UserIdentity.subject == subject))
            ).scalar_one()
        assert str(identity.user_id) == password_user["user"]["id"]


async def test_linking_an_unproven_sign_up_drops_its_password(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    subject = uuid.uuid4().hex
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        address, _ = await api.register()
        await set_mock_user(mock_oidc_issuer, subject, google_claims(address))
        body = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert body["http_status"] == 200, body
        assert body["data"]["user"]["wallet_number"]
        login = await api.client.post("/auth/login", json={"email": address, "password": PASSWORD})
        assert login.status_code == 401


async def test_an_unverified_google_email_is_refused(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    subject, address = uuid.uuid4().hex, new_email()
    await set_mock_user(mock_oidc_issuer, subject, google_claims(address, verified=False))
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        body = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert (body["http_status"], body["error"]["code"]) == (403, "email_not_verified")
        async with api.app.state.database.transaction() as session:
            user = (
                await session.execute(select(User).where(User.email == address))
            ).scalar_one_or_none()
        assert user is None


async def test_a_deactivated_user_cannot_sign_in_with_google(
    make_api: MakeApi, mock_oidc_issuer: str
) -> None:
    subject = uuid.uuid4().hex
    async with make_api(**google_settings(mock_oidc_issuer)) as api:
        data = await api.signed_in()
        await api.client.post(
            "/me/deactivate", headers=bearer(data["access_token"]), json={"password": PASSWORD}
        )
        await set_mock_user(mock_oidc_issuer, subject, google_claims(data["user"]["email"]))
        body = await sign_in_with_mock(api, mock_oidc_issuer, subject)
        assert (body["http_status"], body["error"]["code"]) == (403, "account_inactive")


async def test_without_a_client_id_both_routes_are_404(api: Api) -> None:
    for path in ("/auth/google", "/auth/google/callback?code=x&state=y"):
        response = await api.client.get(path)
        assert (response.status_code, response.json()["error"]["code"]) == (
            404,
            "provider_not_configured",
        )


async def test_the_fake_provider_flow_succeeds_with_pkce(
    make_api: MakeApi, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"sub": uuid.uuid4().hex, **google_claims(new_email())}
    async with make_api(**google_settings(fake_provider.issuer)) as api:
        query = await consent_at_fake(await start_google(api))
        response = await google_callback(api, query)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("misbehaviour", "code"),
    [
        ("wrong_nonce", "google_sign_in_failed"),
        ("wrong_audience", "google_sign_in_failed"),
        ("other_audience_naming_us_as_azp", "google_sign_in_failed"),
        ("expired", "google_sign_in_failed"),
        ("bad_signature", "google_sign_in_failed"),
    ],
)
async def test_a_bad_id_token_is_refused(
    make_api: MakeApi, fake_provider: FakeProvider, misbehaviour: str, code: str
) -> None:
    address = new_email()
    fake_provider.claims = {"sub": uuid.uuid4().hex, **google_claims(address)}
    fake_provider.misbehaviour = misbehaviour
    async with make_api(**google_settings(fake_provider.issuer)) as api:
        query = await consent_at_fake(await start_google(api))
        response = await google_callback(api, query)
        assert (response.status_code, response.json()["error"]["code"]) == (401, code)
        async with api.app.state.database.transaction() as session:
            user = (
                await session.execute(select(User).where(User.email == address))
            ).scalar_one_or_none()
        assert user is None


async def test_a_tampered_state_is_refused(make_api: MakeApi, fake_provider: FakeProvider) -> None:
    fake_provider.claims = {"sub": uuid.uuid4().hex, **google_claims(new_email())}
    async with make_api(**google_settings(fake_provider.issuer)) as api:
        query = parse_qs(await consent_at_fake(await start_google(api)))
        state = query["state"][0]
        tampered = state[:-1] + ("A" if state[-1] != "A" else "B")
        response = await api.client.get(
            "/auth/google/callback", params={"code": query["code"][0], "state": tampered}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (
            400,
            "invalid_oauth_state",
        )
        missing = await api.client.get("/auth/google/callback", params={"code": query["code"][0]})
        assert missing.status_code == 400


async def test_a_replayed_code_or_callback_is_refused(
    make_api: MakeApi, fake_provider: FakeProvider
) -> None:
    fake_provider.claims = {"sub": uuid.uuid4().hex, **google_claims(new_email())}
    async with make_api(**google_settings(fake_provider.issuer)) as api:
        first = await consent_at_fake(await start_google(api))
        assert (await google_callback(api, first)).status_code == 200

        replayed_callback = await google_callback(api, first)
        assert (replayed_callback.status_code, replayed_callback.json()["error"]["code"]) == (
            400,
            "invalid_oauth_state",
        )

        second = parse_qs(await consent_at_fake(await start_google(api)))
        old_code = parse_qs(first)["code"][0]
        replayed_code = await api.client.get(
            "/auth/google/callback", params={"code": old_code, "state": second["state"][0]}
        )
        assert (replayed_code.status_code, replayed_code.json()["error"]["code"]) == (
            401,
            "google_sign_in_failed",
        )
        # The refused attempt used its state up too.
        retry = await api.client.get(
            "/auth/google/callback",
            params={"code": second["code"][0], "state": second["state"][0]},
        )
        assert retry.status_code == 400


async def test_a_refusal_at_the_provider_is_refused(
    make_api: MakeApi, fake_provider: FakeProvider
) -> None:
    async with make_api(**google_settings(fake_provider.issuer)) as api:
        state = parse_qs(urlsplit(await start_google(api)).query)["state"][0]
        response = await api.client.get(
            "/auth/google/callback", params={"error": "access_denied", "state": state}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (
            401,
            "google_sign_in_failed",
        )


async def test_an_unreachable_provider_is_a_502(make_api: MakeApi) -> None:
    from tests.fixtures.identity import free_port

    async with make_api(**google_settings(f"http://127.0.0.1:{free_port()}")) as api:
        response = await api.client.get("/auth/google")
        assert (response.status_code, response.json()["error"]["code"]) == (
            502,
            "provider_unavailable",
        )
