"""Hard bounces: an address that does not exist is never mailed again (SG-4)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.enums import DeliveryStatus, SuppressionReason, SuppressionScope
from app.subscriptions.repository import stop_pending_deliveries, upsert_suppression


async def record_hard_bounce(
    session: AsyncSession,
    *,
    subscriber_id: int,
    address_hash: str,
    reason: SuppressionReason = SuppressionReason.HARD_BOUNCE,
) -> None:
    """SG-4 (Act Art. 6, no mail to fictitious addresses): a 5xx refusal of the recipient at
    RCPT, a hard bounce that comes back later, or too many soft bounces (``reason``) suppress
    the address for every sender, and cancel its other queued deliveries."""
    await upsert_suppression(
        session,
        address_hash=address_hash,
        scope=SuppressionScope.GLOBAL,
        scope_ref=0,
        reason=reason,
        consent_event_id=None,
    )
    await stop_pending_deliveries(session, subscriber_id, status=DeliveryStatus.SKIPPED_SUPPRESSED)
