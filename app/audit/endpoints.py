"""GET /audit (DS-6): who changed or exported what, and when. Admin keys only.

Included by ``app.main`` with the other admin routers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api_fields import Cursor, Page, UtcTimestamp
from app.audit import service
from app.audit.schemas import AuditAction, AuditEntryOut
from app.auth.dependencies import AdminKey
from app.db import SessionDep

router = APIRouter(tags=["audit"])


@router.get("/audit")
async def audit_log(
    session: SessionDep,
    principal: AdminKey,
    action: Annotated[AuditAction | None, Query()] = None,
    since: Annotated[UtcTimestamp | None, Query()] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AuditEntryOut]:
    items, next_cursor = await service.audit_entries(
        session, principal, action=action, since=since, before_id=cursor, limit=limit
    )
    return Page[AuditEntryOut](items=items, next_cursor=next_cursor)
