"""HTTP endpoints of /lists/{id}/consent-texts: the wordings a list's own forms show."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.wordings import service
from app.wordings.schemas import WordingCreate, WordingOut

router = APIRouter(prefix="/lists/{list_id}/consent-texts", tags=["lists"])

ListId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]
Version = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


@router.post(
    "",
    status_code=201,
    responses={200: {"model": WordingOut, "description": "This text was registered already"}},
)
async def register_wording(
    list_id: ListId,
    body: WordingCreate,
    response: Response,
    session: SessionDep,
    principal: AdminKey,
) -> WordingOut:
    """Register the exact wording a signup form of this list shows (CR-1): 201 with its hash
    and version; 200 with the existing registration if this text is registered already."""
    registration = await service.register_wording(session, principal, list_id, body)
    if not registration.created:
        response.status_code = 200
    return WordingOut.of(registration.wording, registration.text)


@router.get("")
async def list_wordings(
    list_id: ListId,
    session: SessionDep,
    principal: ReadKey,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[WordingOut]:
    """Every wording registered for the list, retired ones included, by version."""
    rows, next_cursor = await service.list_wordings(
        session, principal, list_id, after_version=cursor, limit=limit
    )
    return Page[WordingOut](
        items=[WordingOut.of(wording, text) for wording, text in rows], next_cursor=next_cursor
    )


@router.post("/{version}/retire")
async def retire_wording(
    list_id: ListId, version: Version, session: SessionDep, principal: AdminKey
) -> WordingOut:
    """Retire a wording: no longer accepted for new signups; kept for the ledger (CR-1)."""
    return WordingOut.of(*await service.retire_wording(session, principal, list_id, version))
