"""Helpers for the privacy tests: a frozen clock, a world that has mailed somebody, a read-only
client, and what the database holds about an address."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import time_machine
from sqlalchemy import select

from app.models import Campaign, LedgerTombstone, Sender
from app.runtime import Runtime
from app.sending import deliveries as campaigns_repo
from app.sending.runner import DeliveryRunner
from tests.factories import World, make_world

SENDER: dict[str, Any] = {
    "name": "株式会社承諾",
    "postal_address": "〒100-0001 東京都千代田区千代田1-1",
    "contact_email": "support@shodaku.example",
    "from_email": "news@shodaku.example",
    "from_name": "承諾ニュース",
}


def utc(text: str) -> datetime:
    """An instant written as ISO 8601 in UTC ("2027-01-10T03:00")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """A clock the test moves by hand; it starts on 2027-01-10 03:00 UTC (12:00 in Japan)."""
    with time_machine.travel(utc("2027-01-10T03:00"), tick=False) as traveller:
        yield traveller


async def world_with(runtime: Runtime, slug: str = "news", **sender: Any) -> World:
    """A sender (with the retention policy given), a double opt-in list and a template."""
    return await make_world(runtime, slug=slug, sender={**SENDER, **sender})


async def start_campaign(admin: httpx.AsyncClient, world: World) -> int:
    """Create a campaign on the world's list and start it (deliveries are queued)."""
    created = await admin.post(
        "/campaigns",
        json={"name": "月刊", "list_id": world.list_id, "template_id": world.template_id},
    )
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    started = await admin.post(f"/campaigns/{campaign_id}/send")
    assert started.status_code == 202, started.text
    return campaign_id


async def queue_deliveries(runtime: Runtime, campaign_id: int) -> None:
    """Create the started campaign's delivery rows, as a worker does before claiming."""
    async with runtime.sessionmaker() as session, session.begin():
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        while await campaigns_repo.materialize_batch(session, campaign, batch_size=500):
            pass


async def send_campaign(admin: httpx.AsyncClient, app: Any, world: World) -> int:
    """Start a campaign on the world's list and send it to the end; return its id."""
    campaign_id = await start_campaign(admin, world)
    report = await DeliveryRunner(app.state.runtime, app.state.transport).drain(campaign_id)
    assert report.finished
    return campaign_id


async def tombstones(runtime: Runtime) -> list[LedgerTombstone]:
    async with runtime.sessionmaker() as session:
        result = await session.scalars(select(LedgerTombstone).order_by(LedgerTombstone.event_id))
        return list(result.all())


async def set_policy(runtime: Runtime, sender_id: int, **values: Any) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        sender = await session.get(Sender, sender_id)
        assert sender is not None
        for name, value in values.items():
            setattr(sender, name, value)
