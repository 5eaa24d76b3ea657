"""Queries on campaigns and their delivery ledger."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, Delivery, MailingList
from app.models.base import utcnow
from app.models.enums import DeliveryStatus

# Not yet handed to SMTP: an opt-out cancels these in its own transaction (SG-2).
CANCELLABLE = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)


async def cancel_queued_deliveries(
    session: AsyncSession, *, subscriber_id: int, sender_id: int, list_id: int | None
) -> int:
    """SG-2: cancel the address's deliveries that no SMTP transaction has started for, in the
    opt-out's own transaction. On PostgreSQL this UPDATE waits for a worker that holds the row
    locked while it opens the SMTP transaction, so the opt-out commits (and is answered) only
    after any such transaction started; on SQLite the write lock does the same."""
    campaigns = select(Campaign.id).join(MailingList, MailingList.id == Campaign.list_id)
    campaigns = campaigns.where(MailingList.sender_id == sender_id)
    if list_id is not None:
        campaigns = campaigns.where(Campaign.list_id == list_id)
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status.in_(CANCELLABLE),
            Delivery.campaign_id.in_(campaigns),
        )
        .values(status=DeliveryStatus.CANCELLED, updated_at=utcnow(), lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
