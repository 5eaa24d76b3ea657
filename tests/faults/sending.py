"""Driving a campaign through a fault the way a worker would, and reading the outcome."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from app.models import Campaign, Delivery
from app.models.enums import CampaignStatus, DeliveryStatus
from app.runtime import Runtime
from app.sending.runner import DeliveryRunner
from tests.smtp import SmtpServer


async def wait_until(predicate: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def campaign_status(runtime: Runtime, campaign_id: int) -> CampaignStatus:
    async with runtime.sessionmaker() as session:
        campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    return CampaignStatus(campaign.status)


async def ledger(runtime: Runtime, campaign_id: int) -> Counter[str]:
    """How many deliveries of the campaign are in each status, straight from the table."""
    async with runtime.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.campaign_id == campaign_id)
                .group_by(Delivery.status)
            )
        ).all()
    return Counter({str(status): int(n) for status, n in rows})


async def fast_forward_backoff(runtime: Runtime, campaign_id: int) -> int:
    """As if the retry backoff (30 s, 1 min, 2 min, ...) had elapsed: queued deliveries waiting
    for a retry become due now. Returns how many were waiting."""
    now = datetime.now(UTC)
    async with runtime.sessionmaker() as session, session.begin():
        result = await session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status == DeliveryStatus.QUEUED,
                Delivery.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def send_until_finished(
    runtime: Runtime,
    sender: DeliveryRunner,
    campaign_id: int,
    *,
    seconds: float,
    between: Callable[[], Awaitable[Any]] | None = None,
) -> int:
    """Run the sender over the campaign as a worker loop does, until the campaign is ``sent``;
    ``between`` runs after each pass. Returns the number of passes."""
    deadline = time.monotonic() + seconds
    passes = 0
    while True:
        await sender.drain(campaign_id)
        passes += 1
        status = await campaign_status(runtime, campaign_id)
        if status is CampaignStatus.SENT:
            return passes
        if time.monotonic() > deadline:
            raise AssertionError(
                f"campaign still {status} after {seconds:.0f} s: "
                f"{dict(await ledger(runtime, campaign_id))}"
            )
        if between is not None:
            await between()
        await asyncio.sleep(0.1)


def mailbox_counts(smtp_server: SmtpServer) -> Counter[str]:
    """How many messages each recipient received."""
    with smtp_server.lock:
        return Counter(r.rcpt_tos[0].lower() for r in smtp_server.received)


def duplicates(counts: Counter[str]) -> dict[str, int]:
    return {address: n for address, n in counts.items() if n > 1}
