"""A template fast for the sample recipient and slow for real ones (DS-6): at send time each
message has a small budget and is composed off the event loop, so the campaign cannot hold the
process (opt-outs, pages, health) while it fails those deliveries."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from app.models import Delivery
from app.models.enums import DeliveryStatus
from app.sending.runner import DeliveryRunner
from tests.factories import consent_many, make_world
from tests.smtp import SmtpServer

SLOW_FOR_REAL_RECIPIENTS = (
    "<p>hi {{ name }}</p>{% if email != 'taro@example.jp' %}"
    "{% for i in range(99999) %}{% set _ = ('x' * 9999)|sort %}{% endfor %}{% endif %}"
)


async def test_ds6_a_template_slow_for_real_recipients_fails_them_without_holding_the_loop(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, smtp_server: SmtpServer
) -> None:
    runtime = app.state.runtime
    world = await make_world(runtime)
    await consent_many(runtime, world.list_id, 4)
    template = await admin.post(
        "/templates", json={"name": "slow", "subject": "slow", "html": SLOW_FOR_REAL_RECIPIENTS}
    )
    assert template.status_code == 201, template.text  # the sample recipient renders at once
    campaign = await admin.post(
        "/campaigns",
        json={"name": "slow", "list_id": world.list_id, "template_id": template.json()["id"]},
    )
    assert (await admin.post(f"/campaigns/{campaign.json()['id']}/send")).status_code == 202

    drain = asyncio.create_task(
        DeliveryRunner(runtime, app.state.transport).drain(campaign.json()["id"])
    )
    answered_meanwhile = 0
    while not drain.done():
        assert (await client.get("/healthz")).status_code == 200
        if not drain.done():
            answered_meanwhile += 1
        await asyncio.sleep(0.01)
    report = await drain
    assert report.finished
    # The process kept answering while the messages were being tried.
    assert answered_meanwhile >= 3
    async with runtime.sessionmaker() as session:
        deliveries = (await session.scalars(select(Delivery))).all()
    assert len(deliveries) == 4
    for delivery in deliveries:
        assert delivery.status == DeliveryStatus.FAILED
        assert "not composable" in (delivery.smtp_response or "")
        assert "seconds to render" in (delivery.smtp_response or "")
    assert smtp_server.count() == 0
