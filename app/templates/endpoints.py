"""HTTP endpoints of /templates; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api_fields import DB_ID_MAX, Cursor, Page
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.deps import RuntimeDep
from app.templates import service
from app.templates.schemas import (
    PreviewOut,
    PreviewRequest,
    TemplateCreate,
    TemplateOut,
    TemplateUpdate,
)

router = APIRouter(prefix="/templates", tags=["templates"])

TemplateId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


@router.post("", status_code=201)
async def create_template(
    body: TemplateCreate, session: SessionDep, runtime: RuntimeDep, principal: AdminKey
) -> TemplateOut:
    template = await service.create_template(session, principal, runtime.settings, body)
    return TemplateOut.model_validate(template)


@router.get("")
async def list_templates(
    session: SessionDep,
    principal: ReadKey,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[TemplateOut]:
    rows, next_cursor = await service.list_templates(
        session, principal.senders, after_id=cursor, limit=limit
    )
    return Page[TemplateOut](
        items=[TemplateOut.model_validate(t) for t in rows], next_cursor=next_cursor
    )


@router.get("/{template_id}")
async def get_template(
    template_id: TemplateId, session: SessionDep, principal: ReadKey
) -> TemplateOut:
    template = await service.get_template(session, principal.senders, template_id)
    return TemplateOut.model_validate(template)


@router.patch("/{template_id}")
async def update_template(
    template_id: TemplateId,
    body: TemplateUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AdminKey,
) -> TemplateOut:
    template = await service.update_template(
        session, principal, runtime.settings, template_id, body
    )
    return TemplateOut.model_validate(template)


@router.post("/{template_id}/preview")
async def preview_template(
    template_id: TemplateId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AdminKey,
    body: PreviewRequest | None = None,
) -> PreviewOut:
    """Admin key: a preview for a real subscriber carries their working unsubscribe link."""
    request = body or PreviewRequest()
    rendered = await service.preview(
        session,
        runtime,
        principal,
        template_id,
        subscriber_id=request.subscriber_id,
        list_id=request.list_id,
        language=request.language.value if request.language else None,
    )
    return PreviewOut(subject=rendered.subject, html=rendered.html, text=rendered.text)
