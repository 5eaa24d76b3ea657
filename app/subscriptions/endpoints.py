"""HTTP endpoints of the consent domain: recorded consents, the ledger and its export, opt-outs
and suppressions; see docs/reference.md."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from app.api_fields import DB_ID_MAX, Cursor, EmailAddress, Page, UtcTimestamp
from app.auth.dependencies import AdminKey, ReadKey
from app.db import SessionDep
from app.deps import HasherDep, RuntimeDep
from app.subscriptions import admin_service
from app.subscriptions.schemas import (
    ConsentCreate,
    ConsentEventOut,
    ConsentRecorded,
    OptOutCreate,
    OptOutRecorded,
    SubscriptionOut,
    SuppressionStatus,
)

router = APIRouter(tags=["consent"])

ListFilter = Annotated[int | None, Query(ge=1, le=DB_ID_MAX)]
EmailFilter = Annotated[EmailAddress | None, Query()]


@router.post("/lists/{list_id}/consents", status_code=201)
async def record_consent(
    list_id: Annotated[int, Path(ge=1, le=DB_ID_MAX)],
    body: ConsentCreate,
    session: SessionDep,
    hasher: HasherDep,
    principal: AdminKey,
) -> ConsentRecorded:
    record = await admin_service.record_operator_consent(
        session, hasher, principal, list_id=list_id, data=body
    )
    return ConsentRecorded(
        event=ConsentEventOut.model_validate(record.event),
        subscription=SubscriptionOut.of(record.subscription, record.gate),
    )


@router.get("/consents")
async def list_consent_events(
    session: SessionDep,
    principal: ReadKey,
    list_id: ListFilter = None,
    email: EmailFilter = None,
    since: Annotated[UtcTimestamp | None, Query()] = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ConsentEventOut]:
    events, next_cursor = await admin_service.consent_events(
        session, principal, list_id=list_id, email=email, since=since, before_id=cursor, limit=limit
    )
    return Page[ConsentEventOut](
        items=[ConsentEventOut.model_validate(e) for e in events], next_cursor=next_cursor
    )


@router.get(
    "/consents/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every event with its evidence, as CSV or as a JSON array (CR-3)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def export_consent_events(
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ReadKey,
    list_id: ListFilter = None,
    email: EmailFilter = None,
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> StreamingResponse:
    stream = await admin_service.consent_export(
        session, runtime.long_reads, principal, list_id=list_id, email=email, fmt=fmt
    )
    name = "shodaku-consents" + (f"-list-{list_id}" if list_id is not None else "")
    media_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return StreamingResponse(
        stream,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
            # Personal data: no cache on the way may keep a copy.
            "Cache-Control": "no-store",
        },
    )


@router.post("/optouts", status_code=201)
async def record_optout(
    body: OptOutCreate, session: SessionDep, hasher: HasherDep, principal: AdminKey
) -> OptOutRecorded:
    return await admin_service.record_operator_optout(session, hasher, principal, body)


@router.get("/suppressions")
async def suppression_status(
    email: Annotated[EmailAddress, Query()],
    session: SessionDep,
    hasher: HasherDep,
    principal: ReadKey,
) -> SuppressionStatus:
    return await admin_service.suppression_status(session, hasher, email, principal.senders)
