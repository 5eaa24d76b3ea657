"""Queries on the audit log (DS-6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, AuditLog


async def newest_first(
    session: AsyncSession,
    *,
    action: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[AuditLog, str | None, str | None]]:
    """Entries newest first (by id, which grows with time), each with its key's name and scope.
    ``action`` matches that action, or every action of a domain (``consent`` matches
    ``consent.record`` and ``consent.export``)."""
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
    if since is not None:
        stmt = stmt.where(AuditLog.occurred_at >= since)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    return [(entry, name, scope) for entry, name, scope in (await session.execute(stmt)).all()]
