"""The consent ledger's hash chain (CR-3): filled in by the records work."""

from __future__ import annotations

from app.config import Settings


async def verify_command(settings: Settings) -> int:
    raise SystemExit("shodaku verify-ledger arrives with the records work")
