"""HTTP endpoints of proof and security (docs/reference.md): a campaign's compliance report
(CR-3), and the audit log (DS-6), whose router is included here so that ``app.main`` needs no
change."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from app.api_fields import DB_ID_MAX
from app.audit.endpoints import router as audit_router
from app.auth.dependencies import ReadKey
from app.db import SessionDep
from app.deps import RuntimeDep
from app.ledger import service

router = APIRouter()
router.include_router(audit_router)


@router.get(
    "/campaigns/{campaign_id}/compliance-report",
    tags=["campaigns"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per recipient: delivery, legal basis, the consent event "
            "relied on with its evidence and wording, and any opt-out (CR-3)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def compliance_report(
    campaign_id: Annotated[int, Path(ge=1, le=DB_ID_MAX)],
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ReadKey,
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> StreamingResponse:
    stream = await service.compliance_report(
        session, runtime.long_reads, principal, campaign_id=campaign_id, fmt=fmt
    )
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json",
        headers={
            "Content-Disposition": (
                f'attachment; filename="shodaku-campaign-{campaign_id}-compliance.{fmt}"'
            ),
            # Personal data: no cache on the way may keep a copy.
            "Cache-Control": "no-store",
        },
    )
