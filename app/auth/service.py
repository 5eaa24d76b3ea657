"""Admin API keys: created once and shown once, stored as a hash only (DS-6)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey
from app.models.enums import ApiKeyScope

KEY_PREFIX = "shk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the admin API."""

    api_key_id: int
    scope: ApiKeyScope

    @property
    def recorded_by(self) -> str:
        return f"api_key:{self.api_key_id}"


def hash_key(key: str) -> str:
    # Keys are 256 random bits: a plain SHA-256 is enough, no slow KDF needed.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession, name: str, scope: ApiKeyScope
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the key itself, which is never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, scope=scope, key_hash=hash_key(key), prefix=key[:10])
    session.add(row)
    await session.flush()
    return row, key


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    row = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    if row is None:
        return None
    return Principal(api_key_id=row.id, scope=ApiKeyScope(row.scope))
