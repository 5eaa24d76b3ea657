"""Senders: the business whose identity every message carries (MH-1, SG-3)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.scope import SenderIds, covers
from app.auth.service import Principal
from app.errors import Forbidden, InvalidInput, NotFound
from app.models import Sender
from app.senders import repository as repo
from app.senders.retention_policy import minimum_retention_days
from app.senders.schemas import SenderCreate, SenderUpdate

CONTACT_FIELDS = ("contact_email", "contact_phone", "contact_url")


def missing_identity(sender: Sender) -> list[str]:
    """SG-3 (Act Art. 4, Ordinance 9): the items every marketing mail must display."""
    missing = []
    if not (sender.name or "").strip():
        missing.append("name")
    if not (sender.postal_address or "").strip():
        missing.append("postal_address")
    if not any((getattr(sender, field) or "").strip() for field in CONTACT_FIELDS):
        missing.append("contact (contact_email, contact_phone or contact_url)")
    return missing


def _require_contact(sender: Sender) -> None:
    """MH-1 (5), SG-3: a phone number, email address or URL for complaints and inquiries must
    be printed in every message, so a sender without one is refused here already; the campaign
    preflight checks the whole identity again at send, with the same missing_identity()."""
    if any(item.startswith("contact") for item in missing_identity(sender)):
        raise InvalidInput(
            "contact_email, contact_phone or contact_url: at least one contact for complaints "
            "and inquiries is required; it is printed in every message (MH-1, SG-3)."
        )


def _require_legal_retention(sender: Sender) -> None:
    """CR-2: consent records are held at least one month after sending stops, one year for a
    sender under a measures order; a policy below that is refused."""
    minimum = minimum_retention_days(sender.under_measures_order)
    if sender.retention_days < minimum:
        raise InvalidInput(
            f"retention_days: must be at least {minimum} for a sender under a measures order: "
            "consent records are held at least one year after sending stops (CR-2)."
        )


async def get_sender(session: AsyncSession, senders: SenderIds, sender_id: int) -> Sender:
    """A sender outside a bound key's senders does not exist for it (DS-6)."""
    sender = await repo.get(session, sender_id) if covers(senders, sender_id) else None
    if sender is None:
        raise NotFound(f"There is no sender {sender_id}.")
    return sender


async def list_senders(
    session: AsyncSession, senders: SenderIds, *, after_id: int | None, limit: int
) -> tuple[list[Sender], str | None]:
    rows = await repo.page(session, senders=senders, after_id=after_id, limit=limit + 1)
    return keyset_page(rows, limit, lambda s: s.id)


async def create_sender(session: AsyncSession, principal: Principal, data: SenderCreate) -> Sender:
    """Create a sender (MH-1, SG-3); audited with the key that made it (DS-6). A key bound
    to senders cannot: the new sender would be outside its own scope."""
    if principal.senders is not None:
        raise Forbidden("A key bound to senders cannot create senders.")
    sender = Sender(**data.model_dump())
    _require_contact(sender)
    _require_legal_retention(sender)
    session.add(sender)
    await session.flush()
    await record_audit(
        session, principal, "sender.create", "sender", sender.id, {"name": sender.name}
    )
    return sender


async def update_sender(
    session: AsyncSession, principal: Principal, sender_id: int, data: SenderUpdate
) -> Sender:
    """Change the fields given; the sender must still have a contact afterwards (SG-3)."""
    sender = await get_sender(session, principal.senders, sender_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(sender, name, value)
    _require_contact(sender)
    _require_legal_retention(sender)
    await session.flush()
    # Field names only: values may be personal data (a responsible person, an address).
    await record_audit(
        session, principal, "sender.update", "sender", sender.id, {"fields": sorted(changes)}
    )
    return sender
