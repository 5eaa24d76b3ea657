"""Managing API keys: create, list, revoke, by the CLI or an admin key bound to no sender
(DS-6). Every change is audited, never with the key itself."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth import repository as repo
from app.auth.service import Principal, create_api_key
from app.errors import Forbidden, NotFound
from app.models import ApiKey
from app.models.base import utcnow
from app.models.enums import ApiKeyScope


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as listed: never the key nor its hash."""

    key: ApiKey
    sender_ids: list[int]


def _require_key_manager(principal: Principal) -> None:
    """Only an admin key bound to no sender manages keys: a bound key could otherwise make
    itself a key for every sender (DS-6)."""
    if principal.senders is not None:
        raise Forbidden(
            "A key bound to senders cannot manage API keys; use an admin key not bound to any."
        )


async def create_key(
    session: AsyncSession,
    principal: Principal | None,
    *,
    name: str,
    scope: ApiKeyScope,
    sender_ids: Collection[int],
    expires_at: datetime | None,
) -> tuple[KeyView, str]:
    """Create a key (API or CLI: ``principal`` None); audited without the key (DS-6)."""
    if principal is not None:
        _require_key_manager(principal)
    row, key = await create_api_key(
        session, name, scope, sender_ids=sender_ids, expires_at=expires_at
    )
    senders = sorted(set(sender_ids))
    await record_audit(
        session,
        principal,
        "api_key.create",
        "api_key",
        row.id,
        {
            "name": row.name,
            "scope": row.scope,
            "sender_ids": senders,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "via": "cli" if principal is None else "api",
        },
    )
    return KeyView(row, senders), key


async def list_keys(
    session: AsyncSession, principal: Principal | None, *, after_id: int | None, limit: int
) -> tuple[list[KeyView], str | None]:
    if principal is not None:
        _require_key_manager(principal)
    rows = await repo.page(session, after_id=after_id, limit=limit + 1)
    page, next_cursor = keyset_page(rows, limit, lambda r: r.id)
    senders = await repo.senders_of(session, [r.id for r in page])
    return [KeyView(r, senders.get(r.id, [])) for r in page], next_cursor


async def revoke_key(session: AsyncSession, principal: Principal | None, key_id: int) -> KeyView:
    """Revoke a key: from the next request on it is refused with 401 (DS-6). Revoking a key
    already revoked changes nothing and is not audited again."""
    if principal is not None:
        _require_key_manager(principal)
    row = await repo.get(session, key_id)
    if row is None:
        raise NotFound(f"There is no API key {key_id}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
        await record_audit(
            session,
            principal,
            "api_key.revoke",
            "api_key",
            row.id,
            {"name": row.name, "via": "cli" if principal is None else "api"},
        )
    senders = await repo.senders_of(session, [row.id])
    return KeyView(row, senders.get(row.id, []))
