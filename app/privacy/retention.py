"""Retention (CR-2): filled in by the records work."""

from __future__ import annotations

import asyncio

from app.config import Settings
from app.runtime import Runtime


async def purge_command(settings: Settings, *, dry_run: bool) -> int:
    raise SystemExit("shodaku purge arrives with the records work")


async def run_periodic_purge(runtime: Runtime) -> None:
    await asyncio.Event().wait()
