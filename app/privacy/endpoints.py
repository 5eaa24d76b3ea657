"""HTTP endpoints of a person's data rights: disclosure and erasure; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.api_fields import DB_ID_MAX
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.deps import HasherDep, RuntimeDep
from app.privacy import service
from app.privacy.schemas import ErasureReport, SubscriberExport

router = APIRouter(prefix="/subscribers", tags=["privacy"])

SubscriberId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


@router.get("/{subscriber_id}/export")
async def export_subscriber(
    subscriber_id: SubscriberId, session: SessionDep, hasher: HasherDep, principal: ReadKey
) -> SubscriberExport:
    return await service.export_subscriber(session, hasher, principal, subscriber_id)


@router.delete("/{subscriber_id}")
async def erase_subscriber(
    subscriber_id: SubscriberId,
    session: SessionDep,
    hasher: HasherDep,
    principal: AdminKey,
    runtime: RuntimeDep,
) -> ErasureReport:
    return await service.erase_subscriber(
        session, hasher, principal, subscriber_id, outbox_dir=runtime.settings.outbox_dir
    )
