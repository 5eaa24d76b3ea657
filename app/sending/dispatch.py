"""Telling the senders that a campaign has work: in-process on SQLite, jobs on PostgreSQL."""

from __future__ import annotations

import logging

from app.runtime import Runtime

log = logging.getLogger(__name__)


async def dispatch_campaign(runtime: Runtime, campaign_id: int) -> None:
    """Wake the in-process sender, and on PostgreSQL defer procrastinate jobs for the campaign.

    A failure here loses nothing: the ledger is the truth, and the periodic sweep defers jobs
    for every campaign that is sending.
    """
    runtime.sender_wakeup.set()
    if runtime.settings.is_sqlite:
        return
    from app.sending.tasks import defer_drain_jobs

    try:
        await defer_drain_jobs(runtime.settings, campaign_id)
    except Exception:
        log.exception("could not defer jobs for campaign %s; the sweep will", campaign_id)
