"""The audit log: every admin write, with the key that made it (DS-6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
