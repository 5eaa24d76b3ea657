"""Telling the senders that a campaign has work: in-process on SQLite, jobs on PostgreSQL."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import make_url

from app.config import Settings
from app.runtime import Runtime

if TYPE_CHECKING:
    import procrastinate

log = logging.getLogger(__name__)

QUEUE = "shodaku-send"
DRAIN_TASK = "shodaku:drain_campaign"
DRAIN_JOBS_PER_CAMPAIGN = 4


def conninfo(database_url: str) -> str:
    """The libpq connection string for the same database SQLAlchemy uses."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def procrastinate_app(settings: Settings) -> procrastinate.App:
    """A procrastinate App on the configured database, with no tasks: enough to defer jobs by
    task name. A worker process adds the tasks (``app.workers.jobs``). Imported here, not at
    the top: an API process on SQLite never needs procrastinate."""
    import procrastinate

    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(settings.database_url), min_size=1, max_size=4
        )
    )


async def defer_drain_jobs(settings: Settings, campaign_id: int) -> None:
    """Called by the API process when a campaign starts or resumes."""
    app = procrastinate_app(settings)
    async with app.open_async():
        for _ in range(DRAIN_JOBS_PER_CAMPAIGN):
            await app.configure_task(DRAIN_TASK, queue=QUEUE).defer_async(campaign_id=campaign_id)


async def dispatch_campaign(runtime: Runtime, campaign_id: int) -> None:
    """Wake the in-process sender, and on PostgreSQL defer procrastinate jobs for the campaign.

    A failure here loses nothing: the ledger is the truth, and the periodic sweep defers jobs
    for every campaign that is sending.
    """
    runtime.sender_wakeup.set()
    if runtime.settings.is_sqlite:
        return
    try:
        await defer_drain_jobs(runtime.settings, campaign_id)
    except Exception:
        log.exception("could not defer jobs for campaign %s; the sweep will", campaign_id)
