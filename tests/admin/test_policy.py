"""Seed 002's policy settings: deposits by admins only, and a 30-second idle timeout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from coffer.admin.policy import UserDepositsDisabled, deposits_enabled, ensure_user_deposits_enabled
from coffer.settings import Settings
from tests.admin.conftest import person
from tests.fixtures.identity import MakeApi

Shift = Callable[[timedelta], None]


def test_user_deposits_are_on_unless_turned_off() -> None:
    assert deposits_enabled(Settings()) is True
    ensure_user_deposits_enabled(Settings())
    off = Settings(user_deposits_enabled=False)
    assert deposits_enabled(off) is False
    with pytest.raises(UserDepositsDisabled):
        ensure_user_deposits_enabled(off)


async def test_a_thirty_second_idle_timeout_logs_out_an_idle_session_only(
    make_api: MakeApi, shift_clock: Shift
) -> None:
    async with make_api(session_idle_timeout_seconds=30) as api:
        user = await person(api)
        # Activity every 20 s keeps the session alive well past 30 s in all.
        for elapsed in (0, 20, 40, 60):
            shift_clock(timedelta(seconds=elapsed))
            response = await api.client.get("/wallet/balance", headers=user.headers)
            assert response.status_code == 200, (elapsed, response.text)
        shift_clock(timedelta(seconds=60 + 31))
        idle = await api.client.get("/wallet/balance", headers=user.headers)
        assert (idle.status_code, idle.json()["error"]["code"]) == (401, "session_expired")
        shift_clock(timedelta(seconds=60 + 32))
        again = await api.client.get("/wallet/balance", headers=user.headers)
        assert again.status_code == 401
