"""HTTP endpoints of /api-keys (DS-6): list, create, revoke. An admin key bound to no sender
only: a bound key managing keys could make itself one for every sender."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.apikeys import service as keys
from app.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.apikeys.service import KeyView
from app.auth.dependencies import AdminKey
from app.db import SessionDep

router = APIRouter(prefix="/api-keys", tags=["api keys"])

KeyId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


def _out(view: KeyView) -> ApiKeyOut:
    row = view.key
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        sender_ids=view.sender_ids,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.get("")
async def list_api_keys(
    session: SessionDep,
    principal: AdminKey,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ApiKeyOut]:
    views, next_cursor = await keys.list_keys(session, principal, after_id=cursor, limit=limit)
    return Page[ApiKeyOut](items=[_out(v) for v in views], next_cursor=next_cursor)


@router.post("", status_code=201)
async def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: AdminKey
) -> ApiKeyCreated:
    """The answer holds the key itself, once; it is stored only as a hash (DS-6)."""
    view, key = await keys.create_key(
        session,
        principal,
        name=body.name,
        scope=body.scope,
        sender_ids=body.sender_ids or [],
        expires_at=body.expires_at,
    )
    return ApiKeyCreated(**_out(view).model_dump(), key=key)


@router.post("/{key_id}/revoke")
async def revoke_api_key(key_id: KeyId, session: SessionDep, principal: AdminKey) -> ApiKeyOut:
    """Refused with 401 from the next request on; repeating it changes nothing."""
    return _out(await keys.revoke_key(session, principal, key_id))


@router.delete("/{key_id}")
async def delete_api_key(key_id: KeyId, session: SessionDep, principal: AdminKey) -> ApiKeyOut:
    """The same as POST /api-keys/{id}/revoke: the row stays, so that the audit log still
    names the key behind every entry it made (DS-6)."""
    return _out(await keys.revoke_key(session, principal, key_id))
