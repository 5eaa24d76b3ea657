"""HTTP endpoints of /lists; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.lists import service
from app.lists.schemas import ListCreate, ListOut, ListUpdate

router = APIRouter(prefix="/lists", tags=["lists"])

ListId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


@router.post("", status_code=201)
async def create_list(body: ListCreate, session: SessionDep, principal: AdminKey) -> ListOut:
    return ListOut.of(*await service.create_list(session, principal, body))


@router.get("")
async def list_lists(
    session: SessionDep,
    principal: ReadKey,
    sender_id: Annotated[int | None, Query(ge=1, le=DB_ID_MAX)] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ListOut]:
    rows, next_cursor = await service.list_lists(
        session, principal, sender_id=sender_id, after_id=cursor, limit=limit
    )
    return Page[ListOut](items=[ListOut.of(*row) for row in rows], next_cursor=next_cursor)


@router.get("/{list_id}")
async def get_list(list_id: ListId, session: SessionDep, principal: ReadKey) -> ListOut:
    return ListOut.of(*await service.get_list(session, principal, list_id))


@router.patch("/{list_id}")
async def update_list(
    list_id: ListId, body: ListUpdate, session: SessionDep, principal: AdminKey
) -> ListOut:
    return ListOut.of(*await service.update_list(session, principal, list_id, body))
