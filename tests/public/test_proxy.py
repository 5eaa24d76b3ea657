"""Behind a reverse proxy (CR-1, CC-3): the consent record holds the client's address and the
per-IP signup limit counts clients, once the proxy is trusted; until then the service says so."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.models import MailingList
from tests.conftest import BASE_URL
from tests.public.conftest import JSON_WORDING, json_signup
from tests.queries import events_of

PROXY = "10.0.0.5"
WARNING = "SHODAKU_FORWARDED_ALLOW_IPS"


@pytest.fixture
async def behind_proxy(settings: Settings, app: Any) -> AsyncIterator[Any]:
    """The same installation, trusting the proxy, with a per-IP limit of two signups."""
    trusting = create_app(
        settings.model_copy(update={"forwarded_allow_ips": PROXY, "signup_limit_per_ip": 2}),
        run_outbox=False,
        run_sender=False,
    )
    await trusting.state.runtime.hasher()
    yield trusting
    await trusting.state.transport.close()
    await trusting.state.runtime.dispose()


def _client(app: Any, peer: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 443)), base_url=BASE_URL
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]


async def test_cr1_forwarded_headers_from_an_untrusted_peer_are_ignored_and_warned_once(
    app: Any, runtime: Any, weekly: MailingList, caplog: pytest.LogCaptureFixture
) -> None:
    """Without SHODAKU_FORWARDED_ALLOW_IPS the proxy's address is what the service sees; the
    operator learns it from one warning, at the first request carrying forwarded headers."""
    caplog.set_level(logging.WARNING)
    async with _client(app, PROXY) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert _warnings(caplog) == []  # no forwarded headers, nothing to say
        for n in range(3):
            response = await json_signup(client, "weekly", f"person{n}@example.jp")
            assert response.status_code == 200, response.text
        forwarded = {"X-Forwarded-For": "198.51.100.23"}
        for n in range(3):
            response = await client.post(
                "/subscribe/weekly",
                json={
                    "email": f"proxied{n}@example.jp",
                    "consent": True,
                    "consent_text": JSON_WORDING,
                },
                headers=forwarded,
            )
            assert response.status_code == 200, response.text
        await client.get("/healthz", headers={"Forwarded": "for=198.51.100.23"})
    [warning] = _warnings(caplog)
    assert PROXY in warning
    assert "198.51.100.23" not in warning
    # The header was not believed: the record holds the peer's address.
    [grant] = await events_of(runtime, "proxied0@example.jp")
    assert grant.ip == PROXY


async def test_cr1_a_trusted_proxy_gives_the_clients_address_to_the_record_and_the_limit(
    behind_proxy: Any, weekly: MailingList, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    runtime = behind_proxy.state.runtime
    wording = JSON_WORDING

    async def signup(client: httpx.AsyncClient, email: str, visitor: str) -> int:
        response = await client.post(
            "/subscribe/weekly",
            json={"email": email, "consent": True, "consent_text": wording},
            headers={"X-Forwarded-For": visitor},
        )
        return response.status_code

    async with _client(behind_proxy, PROXY) as proxy:
        # Five visitors behind one proxy: each has a limit of its own (two per window here).
        for n in range(5):
            assert await signup(proxy, f"visitor{n}@example.jp", f"198.51.100.{n + 1}") == 200
        [grant] = await events_of(runtime, "visitor3@example.jp")
        assert grant.ip == "198.51.100.4"
        # One visitor signing up again and again is limited, the others are not.
        assert await signup(proxy, "again@example.jp", "198.51.100.1") == 200
        assert await signup(proxy, "again2@example.jp", "198.51.100.1") == 429
        assert await signup(proxy, "other@example.jp", "198.51.100.9") == 200
    # Somebody reaching the service directly cannot claim another address.
    async with _client(behind_proxy, "192.0.2.66") as direct:
        assert await signup(direct, "direct@example.jp", "198.51.100.200") == 200
    [grant] = await events_of(runtime, "direct@example.jp")
    assert grant.ip == "192.0.2.66"
    # Which is the one case worth a warning; the proxy's own requests never were.
    [warning] = _warnings(caplog)
    assert "192.0.2.66" in warning
