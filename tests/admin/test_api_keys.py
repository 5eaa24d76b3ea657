"""API keys an operator can manage (DS-6): listed without the secret, revoked and expired
from the next request on, last use recorded cheaply, bound to senders, every change audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.models import ApiKey
from app.runtime import Runtime
from tests.admin.helpers import api, create_key
from tests.factories import SENDER, create_sender


async def set_key(runtime: Runtime, key_id: int, **values: Any) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))


@pytest.fixture
async def sender_b(admin: httpx.AsyncClient) -> dict[str, Any]:
    return await create_sender(admin, name="株式会社ビー")


async def test_create_shows_the_key_once_and_the_list_never(
    admin: httpx.AsyncClient, app: Any
) -> None:
    """DS-6: the key is in the creation's answer only; listed keys show id, name, scope,
    senders and times, never the key or its hash."""
    created = await create_key(admin, name="newsletter script", scope="read")
    key = created["key"]
    assert key.startswith("shk_")
    assert created["scope"] == "read"
    assert created["sender_ids"] == []
    assert created["revoked_at"] is None

    listing = await admin.get("/api-keys")
    assert listing.status_code == 200
    assert key not in listing.text
    row = next(k for k in listing.json()["items"] if k["id"] == created["id"])
    assert row["name"] == "newsletter script"
    assert row["prefix"] == key[:10]
    assert "key" not in row
    assert "key_hash" not in row
    assert set(row) >= {"created_at", "expires_at", "last_used_at", "revoked_at", "sender_ids"}

    async with api(app, key) as new:
        assert (await new.get("/senders")).status_code == 200


async def test_revoked_key_is_refused_from_the_next_request(
    admin: httpx.AsyncClient, app: Any
) -> None:
    created = await create_key(admin)
    async with api(app, created["key"]) as victim:
        assert (await victim.get("/senders")).status_code == 200
        revoked = await admin.post(f"/api-keys/{created['id']}/revoke")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        refused = await victim.get("/senders")
        assert refused.status_code == 401
        assert refused.json()["error"] == "Unauthorized"


async def test_delete_revokes_too_and_repeats_are_harmless(
    admin: httpx.AsyncClient, app: Any
) -> None:
    created = await create_key(admin)
    first = await admin.delete(f"/api-keys/{created['id']}")
    assert first.status_code == 200
    again = await admin.delete(f"/api-keys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    async with api(app, created["key"]) as victim:
        assert (await victim.get("/senders")).status_code == 401
    assert (await admin.delete("/api-keys/999999")).status_code == 404


async def test_expired_key_is_refused_like_a_bad_key(
    admin: httpx.AsyncClient, app: Any, runtime: Runtime
) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    created = await create_key(admin, expires_at=later.isoformat())
    async with api(app, created["key"]) as temp:
        assert (await temp.get("/senders")).status_code == 200
        await set_key(runtime, created["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
        refused = await temp.get("/senders")
    assert refused.status_code == 401
    listed = (await admin.get("/api-keys")).json()["items"]
    assert next(k for k in listed if k["id"] == created["id"])["expires_at"] is not None


async def test_expiry_takes_a_plain_date_as_the_last_day(admin: httpx.AsyncClient) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    created = await create_key(admin, expires_at=day.isoformat())
    expires = datetime.fromisoformat(created["expires_at"])
    assert expires == datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    past = await admin.post(
        "/api-keys", json={"name": "late", "expires_at": "2020-01-01T00:00:00+00:00"}
    )
    assert past.status_code == 422
    assert "expires_at" in past.json()["detail"]
    garbage = await admin.post("/api-keys", json={"name": "late", "expires_at": "soon"})
    assert garbage.status_code == 422


async def test_last_used_is_recorded_at_most_once_a_minute(
    admin: httpx.AsyncClient, app: Any, runtime: Runtime
) -> None:
    """Recorded on use, but not rewritten by every request (no write on the hot path)."""
    created = await create_key(admin)
    assert created["last_used_at"] is None

    async def last_used() -> str | None:
        rows = (await admin.get("/api-keys")).json()["items"]
        value: str | None = next(k for k in rows if k["id"] == created["id"])["last_used_at"]
        return value

    async with api(app, created["key"]) as user:
        await user.get("/senders")
        first = await last_used()
        assert first is not None
        await user.get("/senders")
        assert await last_used() == first  # within the minute: not written again
        old = datetime.now(UTC) - timedelta(minutes=2)
        await set_key(runtime, created["id"], last_used_at=old)
        await user.get("/senders")
        refreshed = await last_used()
    assert refreshed is not None
    assert datetime.fromisoformat(refreshed) > old


async def test_bound_keys_and_read_keys_cannot_manage_keys(
    admin: httpx.AsyncClient, app: Any, sender: dict[str, Any], reader: httpx.AsyncClient
) -> None:
    """A key bound to senders managing keys could mint itself one for every sender: 403."""
    bound = await create_key(admin, sender_ids=[sender["id"]])
    assert bound["sender_ids"] == [sender["id"]]
    async with api(app, bound["key"]) as scoped:
        for response in (
            await scoped.get("/api-keys"),
            await scoped.post("/api-keys", json={"name": "escalate"}),
            await scoped.post(f"/api-keys/{bound['id']}/revoke"),
            await scoped.delete(f"/api-keys/{bound['id']}"),
        ):
            assert response.status_code == 403
            assert response.json()["error"] == "Forbidden"
    assert (await reader.get("/api-keys")).status_code == 403
    assert (await reader.post("/api-keys", json={"name": "x"})).status_code == 403


async def test_binding_to_an_unknown_sender_is_refused(admin: httpx.AsyncClient) -> None:
    """A typo must not leave a key bound to nothing, which would act for every sender."""
    response = await admin.post("/api-keys", json={"name": "x", "sender_ids": [424242]})
    assert response.status_code == 422
    assert "424242" in response.json()["detail"]
    keys = (await admin.get("/api-keys")).json()["items"]
    assert all(k["name"] != "x" for k in keys)


async def test_every_key_change_is_audited_without_the_key(
    admin: httpx.AsyncClient, sender: dict[str, Any], sender_b: dict[str, Any]
) -> None:
    created = await create_key(admin, name="partner", sender_ids=[sender["id"], sender_b["id"]])
    await admin.post(f"/api-keys/{created['id']}/revoke")
    audit = await admin.get("/audit", params={"action": "api_key"})
    assert audit.status_code == 200
    assert created["key"] not in audit.text
    entries = {e["action"]: e for e in audit.json()["items"]}
    assert set(entries) == {"api_key.create", "api_key.revoke"}
    made = entries["api_key.create"]
    assert made["target_id"] == str(created["id"])
    assert made["details"]["sender_ids"] == sorted([sender["id"], sender_b["id"]])
    assert made["details"]["scope"] == "admin"
    assert made["api_key"]["id"] is not None  # the admin key that made it
    assert entries["api_key.revoke"]["target_id"] == str(created["id"])


@pytest.fixture
async def bound_admin(
    admin: httpx.AsyncClient, app: Any, sender: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    created = await create_key(admin, sender_ids=[sender["id"]])
    async with api(app, created["key"]) as client:
        yield client


async def test_a_bound_key_cannot_create_senders(bound_admin: httpx.AsyncClient) -> None:
    response = await bound_admin.post("/senders", json=SENDER)
    assert response.status_code == 403
    assert response.json()["error"] == "Forbidden"


async def test_ds6_an_empty_sender_list_is_refused_not_read_as_every_sender(
    admin: httpx.AsyncClient,
) -> None:
    """Found in review: ``sender_ids: []`` made a key for every sender, the opposite of what a
    caller binding a key meant. It is refused; leaving the field out is how to ask for that."""
    refused = await admin.post("/api-keys", json={"name": "meant to be bound", "sender_ids": []})
    assert refused.status_code == 422
    assert refused.json()["error"] == "ValidationError"
    listed = (await admin.get("/api-keys")).json()["items"]
    assert "meant to be bound" not in [key["name"] for key in listed]
