"""The web app's cookie session and CSRF protection, over plain HTTP (no browser)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import httpx

from coffer.identity.tokens import decode_token
from tests.fixtures.identity import PASSWORD
from tests.web.conftest import Browserless
from tests.web.forms import csrf_token


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def test_sign_up_with_the_emailed_code_then_sign_in_shows_the_wallet(
    web: Browserless,
) -> None:
    email = await web.sign_up()
    signed_in = await web.sign_in(email)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/app/"
    home = await web.client.get("/app/")
    assert home.status_code == 200
    assert "0.00 NGN" in home.text
    assert "Your wallets" in home.text


async def test_cookies_are_httponly_lax_and_secure_only_over_tls(web: Browserless) -> None:
    email = await web.sign_up()
    signed_in = await web.sign_in(email)
    cookies = _set_cookies(signed_in)
    session_cookie = cookies["coffer_session"].lower()
    assert "httponly" in session_cookie
    assert "samesite=lax" in session_cookie
    assert "path=/app" in session_cookie
    assert "secure" not in session_cookie
    page = await web.client.get("/app/sign-in")
    assert "no-store" in page.headers["cache-control"]
    assert "form-action 'self'" in page.headers["content-security-policy"]

    tls = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.api.app), base_url="https://testserver"
    )
    async with tls:
        first = await tls.get("/app/sign-in")
        assert "secure" in _set_cookies(first)["coffer_csrf"].lower()
        over_tls = await tls.post(
            "/app/sign-in",
            data={
                "csrf_token": csrf_token(first),
                "identifier": email,
                "password": PASSWORD,
            },
        )
        assert over_tls.status_code == 303
        assert "secure" in _set_cookies(over_tls)["coffer_session"].lower()


async def test_a_forged_post_without_the_form_token_is_refused_with_a_clear_page(
    web: Browserless,
) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    page = await web.client.get("/app/")
    # Another site can make the browser send the cookies, but not the signed form token.
    forged = await web.client.post("/app/sign-out", data={"next": "/app/"})
    assert forged.status_code == 403
    assert "could not be verified" in forged.text
    wrong = await web.client.post("/app/sign-out", data={"csrf_token": csrf_token(page) + "x"})
    assert wrong.status_code == 403
    # A token minted for another browser's cookie does not fit this one.
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.api.app), base_url="http://testserver"
    )
    async with other:
        foreign = csrf_token(await other.get("/app/sign-in"))
    refused = await web.client.post("/app/sign-out", data={"csrf_token": foreign})
    assert refused.status_code == 403
    assert (await web.client.get("/app/")).status_code == 200


async def test_sign_out_revokes_the_session_so_the_cookie_stops_working(
    web: Browserless,
) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    stolen = web.client.cookies.get("coffer_session", path="/app")
    assert stolen is not None
    home = await web.client.get("/app/")
    out = await web.client.post("/app/sign-out", data={"csrf_token": csrf_token(home)})
    assert out.status_code == 303
    assert out.headers["location"] == "/app/sign-in?notice=signed_out"
    # The old cookie, replayed, names a revoked session.
    replay = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.api.app),
        base_url="http://testserver",
        cookies={"coffer_session": stolen},
    )
    async with replay:
        answer = await replay.get("/app/")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/app/sign-in?notice=expired")


async def test_the_session_cookie_is_not_a_bearer_token(web: Browserless) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    cookie = web.client.cookies.get("coffer_session", path="/app")
    assert cookie is not None
    assert decode_token(web.api.settings, cookie, token_type="web").role == "user"
    answer = await web.api.client.get("/me", headers={"Authorization": f"Bearer {cookie}"})
    assert answer.status_code == 401


async def test_pages_need_a_session(web: Browserless) -> None:
    answer = await web.client.get("/app/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/sign-in?next=%2Fapp%2F"


async def test_an_idle_session_signs_out_with_a_notice(
    web: Browserless, shift_clock: Callable[[timedelta], None]
) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    assert (await web.client.get("/app/")).status_code == 200
    shift_clock(timedelta(seconds=web.api.settings.session_idle_timeout_seconds + 60))
    timed_out = await web.client.get("/app/")
    assert timed_out.status_code == 303
    assert timed_out.headers["location"].startswith("/app/sign-in?notice=idle")
    notice = await web.client.get(timed_out.headers["location"])
    assert "signed out after a period of inactivity" in notice.text
    # The revocation was committed with the refusal: coming back later does not revive it.
    shift_clock(timedelta(0))
    again = await web.client.get("/app/")
    assert again.status_code == 303


async def test_revoking_a_session_on_the_security_page_signs_that_browser_out(
    web: Browserless,
) -> None:
    email = await web.sign_up()
    await web.sign_in(email)
    laptop = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.api.app), base_url="http://testserver"
    )
    async with laptop:
        page = await laptop.get("/app/sign-in")
        signed_in = await laptop.post(
            "/app/sign-in",
            data={"csrf_token": csrf_token(page), "identifier": email, "password": PASSWORD},
        )
        assert signed_in.status_code == 303
        assert (await laptop.get("/app/")).status_code == 200
        security = await web.client.get("/app/security")
        revoke = re.findall(r'action="(/app/security/sessions/[0-9a-f-]+/revoke)"', security.text)
        assert len(revoke) == 1, "the other session has a revoke button, this one does not"
        done = await web.client.post(revoke[0], data={"csrf_token": csrf_token(security)})
        assert done.status_code == 303
        ended = await laptop.get("/app/")
        assert ended.status_code == 303
        assert ended.headers["location"].startswith("/app/sign-in?notice=expired")
    assert (await web.client.get("/app/")).status_code == 200
