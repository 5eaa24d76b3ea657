"""Campaign endpoints (docs/reference.md): create, send, pause, resume, cancel, stats,
deliveries and the compliance report (CR-3)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import DB_ID_MAX, Cursor, keyset_page
from app.auth.dependencies import AdminKey, ReadKey
from app.campaigns import compliance_report as report_service
from app.campaigns import repository as repo
from app.campaigns import service
from app.campaigns.schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignStats,
    DeliveryOut,
    DeliveryPage,
    VariantOut,
)
from app.db import SessionDep
from app.deps import RuntimeDep
from app.models import Campaign, CampaignVariant
from app.models.enums import DeliveryStatus
from app.runtime import Runtime
from app.sending import deliveries
from app.sending.dispatch import dispatch_campaign

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

# Within the integer column: a larger id overflows the SQLite driver (a 500, found by fuzzing).
CampaignId = Annotated[int, Path(ge=1, le=DB_ID_MAX)]


async def _out(
    session: AsyncSession,
    campaign: Campaign,
    stats: dict[str, int | float | bool] | None = None,
    variants: list[CampaignVariant] | None = None,
) -> CampaignOut:
    stats = stats if stats is not None else await deliveries.delivery_stats(session, campaign.id)
    if variants is None:
        variants = (await service.variants_of(session, [campaign.id]))[campaign.id]
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        list_id=campaign.list_id,
        template_id=campaign.template_id,
        variants={v.language: VariantOut(template_id=v.template_id) for v in variants},
        sender_id=campaign.sender_id,
        status=campaign.status,
        scheduled_at=campaign.scheduled_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        created_at=campaign.created_at,
        stats=CampaignStats(**stats),
    )


async def _started(
    session: AsyncSession, runtime: Runtime, background: BackgroundTasks, started: service.Started
) -> CampaignOut:
    """Answer a send or resume; if sending starts now, wake the senders after the response,
    so after the commit: the workers then find the campaign sending."""
    if started.dispatch:
        background.add_task(dispatch_campaign, runtime, started.campaign.id)
    out = await _out(session, started.campaign)
    out.warnings = started.warnings
    return out


@router.post("", status_code=201, response_model=CampaignOut)
async def create_campaign(
    body: CampaignCreate, session: SessionDep, principal: AdminKey
) -> CampaignOut:
    campaign = await service.create_campaign(session, principal, body)
    return await _out(session, campaign)


@router.get("", response_model=CampaignPage)
async def list_campaigns(
    session: SessionDep,
    principal: ReadKey,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignPage:
    campaigns, next_cursor = keyset_page(
        await repo.list_campaigns(
            session, senders=principal.senders, before_id=cursor, limit=limit + 1
        ),
        limit,
        lambda c: c.id,
    )
    ids = [c.id for c in campaigns]
    stats = await deliveries.delivery_stats_many(session, ids)
    variants = await service.variants_of(session, ids)
    return CampaignPage(
        items=[await _out(session, c, stats[c.id], variants[c.id]) for c in campaigns],
        next_cursor=next_cursor,
    )


@router.get("/{campaign_id}", response_model=CampaignOut)
async def get_campaign(
    campaign_id: CampaignId, session: SessionDep, principal: ReadKey
) -> CampaignOut:
    return await _out(session, await service.get_campaign(session, principal, campaign_id))


@router.post("/{campaign_id}/send", status_code=202, response_model=CampaignOut)
async def send_campaign(
    campaign_id: CampaignId,
    session: SessionDep,
    principal: AdminKey,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> CampaignOut:
    started = await service.send_campaign(session, runtime.settings, principal, campaign_id)
    return await _started(session, runtime, background, started)


@router.post("/{campaign_id}/pause", response_model=CampaignOut)
async def pause_campaign(
    campaign_id: CampaignId, session: SessionDep, principal: AdminKey
) -> CampaignOut:
    return await _out(session, await service.pause_campaign(session, principal, campaign_id))


@router.post("/{campaign_id}/resume", response_model=CampaignOut)
async def resume_campaign(
    campaign_id: CampaignId,
    session: SessionDep,
    principal: AdminKey,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> CampaignOut:
    started = await service.resume_campaign(session, principal, campaign_id)
    return await _started(session, runtime, background, started)


@router.post("/{campaign_id}/cancel", response_model=CampaignOut)
async def cancel_campaign(
    campaign_id: CampaignId, session: SessionDep, principal: AdminKey
) -> CampaignOut:
    return await _out(session, await service.cancel_campaign(session, principal, campaign_id))


@router.get("/{campaign_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    campaign_id: CampaignId,
    session: SessionDep,
    principal: ReadKey,
    status: DeliveryStatus | None = None,
    cursor: Annotated[Cursor, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryPage | JSONResponse:
    await service.get_campaign(session, principal, campaign_id)
    rows, next_cursor = keyset_page(
        await repo.list_deliveries(
            session,
            campaign_id,
            status=status.value if status else None,
            after_id=cursor,
            limit=limit + 1,
        ),
        limit,
        lambda row: row[0].id,
    )
    items = [
        DeliveryOut(
            id=d.id,
            email=email,
            status=d.status,
            consent_event_id=d.consent_event_id,
            attempts=d.attempts,
            sent_at=d.sent_at,
            smtp_response=d.smtp_response,
        )
        for d, email in rows
    ]
    return DeliveryPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{campaign_id}/compliance-report",
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
    campaign_id: CampaignId,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ReadKey,
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> StreamingResponse:
    stream = await report_service.compliance_report(
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
