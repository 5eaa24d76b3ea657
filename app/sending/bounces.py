"""Hard bounces: an address that does not exist is never mailed again (SG-4)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CANCELLABLE
from app.models import Delivery
from app.models.base import utcnow
from app.models.enums import DeliveryStatus, SuppressionReason, SuppressionScope
from app.subscriptions.repository import upsert_suppression


async def record_hard_bounce(
    session: AsyncSession, *, subscriber_id: int, address_hash: str
) -> None:
    """SG-4 (Act Art. 6, no mail to fictitious addresses): a 5xx refusal of the recipient at
    RCPT suppresses the address for every sender, and cancels its other queued deliveries."""
    await upsert_suppression(
        session,
        address_hash=address_hash,
        scope=SuppressionScope.GLOBAL,
        scope_ref=0,
        reason=SuppressionReason.HARD_BOUNCE,
        consent_event_id=None,
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.status.in_(CANCELLABLE))
        .values(
            status=DeliveryStatus.SKIPPED_SUPPRESSED, lease_expires_at=None, updated_at=utcnow()
        )
        .execution_options(synchronize_session=False)
    )
