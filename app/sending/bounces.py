"""Hard bounces: an address that does not exist is never mailed again (SG-4)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import insert_for
from app.models import Delivery, FeedbackEvent
from app.models.base import utcnow
from app.models.enums import DeliveryStatus, FeedbackKind, SuppressionReason, SuppressionScope
from app.subscriptions.repository import stop_pending_deliveries, upsert_suppression


async def record_hard_bounce(
    session: AsyncSession,
    *,
    subscriber_id: int,
    address_hash: str,
    reason: SuppressionReason = SuppressionReason.HARD_BOUNCE,
    refused_delivery_id: int | None = None,
    reply_code: int | None = None,
) -> None:
    """SG-4 (Act Art. 6, no mail to fictitious addresses): a 5xx refusal of the recipient at
    RCPT, a hard bounce that comes back later, or too many soft bounces (``reason``) suppress
    the address for every sender, and cancel its other queued deliveries.

    A refusal at RCPT (``refused_delivery_id``) is also a bounce event of that delivery, as a
    bounce that comes back by mail is (``app.feedback``): the campaign's statistics count both.
    """
    if refused_delivery_id is not None:
        insert = insert_for(session)
        await session.execute(
            insert(FeedbackEvent)
            .values(
                kind=FeedbackKind.HARD_BOUNCE.value,
                address_hash=address_hash,
                delivery_id=refused_delivery_id,
                campaign_id=select(Delivery.campaign_id)
                .where(Delivery.id == refused_delivery_id)
                .scalar_subquery(),
                status=None,
                reporter=f"smtp; {reply_code}" if reply_code else "smtp",
                # One event per refused delivery: a retried refusal is the same bounce.
                dedupe_key=hashlib.sha256(f"rcpt\n{refused_delivery_id}".encode()).hexdigest(),
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
    await upsert_suppression(
        session,
        address_hash=address_hash,
        scope=SuppressionScope.GLOBAL,
        scope_ref=0,
        reason=reason,
        consent_event_id=None,
    )
    await stop_pending_deliveries(
        session, subscriber_id, sender_id=None, status=DeliveryStatus.SKIPPED_SUPPRESSED
    )
