"""The audit log: every admin write, with the key that made it (DS-6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit import repository as repo
from app.audit.schemas import ApiKeyRef, AuditEntryOut
from app.auth.service import Principal
from app.models import AuditLog


async def record_audit(
    session: AsyncSession,
    principal: Principal | None,
    action: str,
    target_type: str,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """DS-6: append an audit entry in the caller's unit of work, so it commits with the change."""
    session.add(
        AuditLog(
            api_key_id=principal.api_key_id if principal else None,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details or {},
        )
    )


async def audit_entries(
    session: AsyncSession,
    principal: Principal,
    *,
    action: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[AuditEntryOut], str | None]:
    """DS-6: the audit log newest first, keyset-paginated: who (the key's id and name), when,
    what and on what. A bound key reads its senders' keys' entries only (DS-6)."""
    rows = await repo.newest_first(
        session,
        action=action,
        since=since,
        before_id=before_id,
        limit=limit + 1,
        senders=principal.senders,
    )
    page, next_cursor = keyset_page(rows, limit, lambda row: row[0].id)
    return [
        AuditEntryOut(
            id=entry.id,
            occurred_at=entry.occurred_at,
            api_key=(
                ApiKeyRef(id=entry.api_key_id, name=name, scope=scope)
                if entry.api_key_id is not None
                else None
            ),
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            details=entry.details,
        )
        for entry, name, scope in page
    ], next_cursor
