"""HTTP endpoints of /senders; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.senders import service
from app.senders.schemas import SenderCreate, SenderOut, SenderUpdate

router = APIRouter(prefix="/senders", tags=["senders"])

SenderId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


@router.post("", status_code=201)
async def create_sender(body: SenderCreate, session: SessionDep, principal: AdminKey) -> SenderOut:
    sender = await service.create_sender(session, principal, body)
    return SenderOut.model_validate(sender)


@router.get("")
async def list_senders(
    session: SessionDep,
    principal: ReadKey,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[SenderOut]:
    rows, next_cursor = await service.list_senders(
        session, principal.senders, after_id=cursor, limit=limit
    )
    return Page[SenderOut](
        items=[SenderOut.model_validate(s) for s in rows], next_cursor=next_cursor
    )


@router.get("/{sender_id}")
async def get_sender(sender_id: SenderId, session: SessionDep, principal: ReadKey) -> SenderOut:
    return SenderOut.model_validate(await service.get_sender(session, principal.senders, sender_id))


@router.patch("/{sender_id}")
async def update_sender(
    sender_id: SenderId, body: SenderUpdate, session: SessionDep, principal: AdminKey
) -> SenderOut:
    sender = await service.update_sender(session, principal, sender_id, body)
    return SenderOut.model_validate(sender)
