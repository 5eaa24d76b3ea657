"""Distribution on PostgreSQL through procrastinate: any number of worker processes, on any hosts.

Jobs only say "this campaign has work"; the delivery ledger decides what is sent. So a job that
is lost, repeated or run on two hosts at once can neither skip nor double-send anybody: workers
claim rows with FOR UPDATE SKIP LOCKED under a lease. A periodic sweep starts due scheduled
campaigns and re-defers work for every campaign still sending (which also recovers the leases
of a worker that died).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import procrastinate

from app.campaigns.service import start_due_scheduled
from app.config import Settings
from app.models import Campaign
from app.models.base import utcnow
from app.models.enums import CampaignStatus
from app.runtime import Runtime
from app.sending import deliveries
from app.sending.dispatch import QUEUE, procrastinate_app
from app.sending.runner import DeliveryRunner

log = logging.getLogger(__name__)

blueprint = procrastinate.Blueprint()


@dataclass
class WorkerContext:
    runtime: Runtime
    runner: DeliveryRunner


_context: WorkerContext | None = None


def set_worker_context(context: WorkerContext | None) -> None:
    global _context
    _context = context


def _require_context() -> WorkerContext:
    if _context is None:
        raise RuntimeError("procrastinate task run outside `shodaku worker`")
    return _context


def worker_app(settings: Settings) -> procrastinate.App:
    """The App a worker process runs, with the tasks below. Only a worker registers them (a
    blueprint can be added to one App only); the API process defers jobs by task name
    (``app.sending.dispatch``)."""
    app = procrastinate_app(settings)
    app.add_tasks_from(blueprint, namespace="shodaku")
    return app


@blueprint.task(name="drain_campaign", queue=QUEUE, pass_context=False)
async def drain_campaign(campaign_id: int) -> None:
    """Send what the campaign has due; then, if retries are waiting, come back when due."""
    context = _require_context()
    report = await context.runner.drain(campaign_id)
    if report.finished:
        return
    async with context.runtime.sessionmaker() as session:
        campaign = await session.get(Campaign, campaign_id)
        due = await deliveries.next_due_at(session, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING or due is None:
        return
    if due > utcnow():
        await drain_campaign.configure(
            schedule_at=due,
            queueing_lock=f"shodaku-retry-{campaign_id}",
        ).defer_async(campaign_id=campaign_id)


@blueprint.periodic(cron="* * * * *")
@blueprint.task(name="sweep", queue=QUEUE, queueing_lock="shodaku-sweep", pass_context=False)
async def sweep(timestamp: int) -> None:
    """Every minute: start due scheduled campaigns, and give every sending campaign a job."""
    context = _require_context()
    async with context.runtime.sessionmaker() as session, session.begin():
        await start_due_scheduled(session)
    async with context.runtime.sessionmaker() as session:
        sending = await deliveries.sending_campaign_ids(session)
    for campaign_id in sending:
        await _defer(campaign_id, lock=f"shodaku-sweep-{campaign_id}")


@blueprint.periodic(cron="17 3 * * *", periodic_id="retention-purge")
@blueprint.task(
    name="purge_records", queue=QUEUE, queueing_lock="shodaku-purge", pass_context=False
)
async def purge_records(timestamp: int) -> None:
    """CR-2: daily (03:17 UTC, 12:17 in Japan), remove what is past its retention; the same
    purge as ``shodaku purge``. Safe beside a manual run: each batch locks its rows SKIP LOCKED."""
    from app.privacy.retention import purge

    context = _require_context()
    await purge(context.runtime.sessionmaker, dry_run=False)


async def _defer(campaign_id: int, *, lock: str | None = None) -> None:
    # AlreadyEnqueued: a job for the campaign is already waiting, which is enough.
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await drain_campaign.configure(queueing_lock=lock).defer_async(campaign_id=campaign_id)
