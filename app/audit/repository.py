"""Queries on the audit log (DS-6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.scope import SenderIds
from app.models import ApiKey, ApiKeySender, AuditLog


async def newest_first(
    session: AsyncSession,
    *,
    action: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
    senders: SenderIds = None,
) -> list[tuple[AuditLog, str | None, str | None]]:
    """Entries newest first (by id, which grows with time), each with its key's name and scope.
    ``action`` matches that action, or every action of a domain (``consent`` matches
    ``consent.record`` and ``consent.export``).

    For a bound key (``senders``), the entries made by keys bound to its senders only, never
    to another (an entry's details may name another sender's data): keys bound to at least
    one of them and to none else (DS-6)."""
    stmt = (
        select(AuditLog, ApiKey.name, ApiKey.scope)
        .outerjoin(ApiKey, ApiKey.id == AuditLog.api_key_id)
        .order_by(AuditLog.id.desc())
        .limit(limit)
    )
    if action is not None:
        stmt = stmt.where(
            or_(
                AuditLog.action == action, AuditLog.action.startswith(f"{action}.", autoescape=True)
            )
        )
    if senders is not None:
        ids = sorted(senders)
        stmt = stmt.where(
            and_(
                AuditLog.api_key_id.in_(
                    select(ApiKeySender.api_key_id).where(ApiKeySender.sender_id.in_(ids))
                ),
                AuditLog.api_key_id.not_in(
                    select(ApiKeySender.api_key_id).where(ApiKeySender.sender_id.not_in(ids))
                ),
            )
        )
    if since is not None:
        stmt = stmt.where(AuditLog.occurred_at >= since)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    return [(entry, name, scope) for entry, name, scope in (await session.execute(stmt)).all()]
