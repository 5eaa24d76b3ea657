"""Admin API keys: no key or a bad key is 401, a read key may read but not write (DS-6)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BASE_URL
from tests.factories import SENDER


@pytest.fixture
async def anonymous(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{BASE_URL}/api/v1") as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/senders"),
        ("POST", "/senders"),
        ("GET", "/lists"),
        ("GET", "/subscribers"),
        ("POST", "/optouts"),
        ("GET", "/consents"),
        ("GET", "/suppressions?email=a@example.com"),
    ],
)
async def test_no_key_is_401_with_the_error_body(anonymous, method, path):
    response = await anonymous.request(method, path, json=SENDER if method == "POST" else None)
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_bad_key_is_401_and_creates_nothing(anonymous, admin):
    response = await anonymous.post(
        "/senders", json=SENDER, headers={"Authorization": "Bearer shk_not-a-real-key"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert (await admin.get("/senders")).json()["items"] == []


async def test_a_read_key_on_a_write_is_403_and_creates_nothing(reader, admin):
    response = await reader.post("/senders", json=SENDER)
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"
    assert (await admin.get("/senders")).json()["items"] == []


async def test_a_read_key_can_read(reader, sender, news):
    assert (await reader.get("/senders")).json()["items"][0]["id"] == sender["id"]
    assert (await reader.get(f"/senders/{sender['id']}")).status_code == 200
    assert (await reader.get(f"/lists/{news['id']}")).status_code == 200
    assert (await reader.get("/subscribers")).status_code == 200
    assert (await reader.get("/consents")).status_code == 200
    assert (await reader.get("/consents/export?format=json")).status_code == 200
    assert (await reader.get("/suppressions?email=a@example.com")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/senders/1", {"name": "x"}),
        ("POST", "/lists", {"name": "x"}),
        ("PATCH", "/lists/1", {"name": "x"}),
        ("POST", "/subscribers", {"email": "a@example.com"}),
        ("PATCH", "/subscribers/1", {"name": "x"}),
        ("POST", "/lists/1/consents", {}),
        ("POST", "/optouts", {"email": "a@example.com", "channel": "phone"}),
    ],
)
async def test_every_write_refuses_a_read_key(reader, sender, news, method, path, body):
    response = await reader.request(method, path, json=body)
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"
