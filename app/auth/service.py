"""Admin API keys: created once and shown once, stored as a hash only; listed, revoked,
expired and bound to senders by an operator (DS-6)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository as repo
from app.errors import InvalidInput
from app.models import ApiKey
from app.models.base import utcnow
from app.models.enums import ApiKeyScope

KEY_PREFIX = "shk_"
# last_used_at is written at most this often per key: a write on every request would cost
# the hot paths (a signup burst, an export) a write lock each for a figure nobody reads by
# the second.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the admin API.

    ``senders`` is None for a key that acts for every sender, else the ids of the senders the
    key is bound to: it sees and acts on their data only (app.auth.scope, DS-6).
    """

    api_key_id: int
    scope: ApiKeyScope
    senders: frozenset[int] | None = None

    @property
    def recorded_by(self) -> str:
        return f"api_key:{self.api_key_id}"


def hash_key(key: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is enough, no slow KDF needed.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession,
    name: str,
    scope: ApiKeyScope,
    *,
    sender_ids: Collection[int] = (),
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the key itself, which is never stored (DS-6).

    Unknown senders and an expiry already past are refused (422), so that a typo never makes
    a key bound to nothing (which would act for every sender) or dead on arrival.
    """
    senders = sorted(set(sender_ids))
    missing = await repo.missing_senders(session, senders)
    if missing:
        raise InvalidInput(f"sender_ids: there is no sender {', '.join(map(str, missing))}.")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at: must be in the future.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name, scope=scope, key_hash=hash_key(key), prefix=key[:10], expires_at=expires_at
    )
    session.add(row)
    await session.flush()
    await repo.bind_senders(session, row.id, senders)
    return row, key


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    # When the key's last_used_at is older than LAST_USED_RESOLUTION: the moment to record.
    record_use_at: datetime | None


async def authenticate(session: AsyncSession, key: str) -> Authenticated | None:
    """The principal of a key that is known, not revoked and not expired; else None (a 401).

    Each request looks the key up afresh (one indexed query with the key's senders), so a
    revocation or an expiry holds from the next request on. Whether its use is to be recorded
    comes with it: only when ``last_used_at`` is older than LAST_USED_RESOLUTION.
    """
    now = utcnow()
    found = await repo.active_by_hash(session, hash_key(key), now)
    if found is None:
        return None
    stale = found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION
    principal = Principal(
        api_key_id=found.id,
        scope=ApiKeyScope(found.scope),
        senders=frozenset(found.sender_ids) if found.sender_ids else None,
    )
    return Authenticated(principal, now if stale else None)


async def record_use(session: AsyncSession, key_id: int, now: datetime) -> None:
    """Set the key's last_used_at, unless another request did within the resolution."""
    await repo.touch(session, key_id, now, now - LAST_USED_RESOLUTION)
