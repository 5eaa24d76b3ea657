"""A person's rights over their data (APPI): disclosure of everything held (DS-1) and erasure
with the legal hold of the consent evidence (DS-3)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import AddressHasher
from app.audit.service import record_audit
from app.auth.service import Principal
from app.errors import Conflict, NotFound
from app.mail.transport import remove_files_of
from app.models.base import utcnow
from app.models.enums import SuppressionReason, SuppressionScope
from app.privacy import repository as repo
from app.privacy.repository import held_event
from app.privacy.retention import compute_holds
from app.privacy.schemas import (
    ErasureDeleted,
    ErasureHeld,
    ErasureReport,
    ErasureSuppression,
    ExportedDelivery,
    ExportedEvent,
    ExportedImport,
    ExportedProfile,
    ExportedSubscription,
    HeldRecords,
    SubscriberExport,
)
from app.subscriptions import admin_service
from app.subscriptions import repository as subscriptions_repo
from app.subscriptions.schemas import ConsentEventOut

log = logging.getLogger(__name__)

CONSENT_HOLD_REASON = (
    "Consent and opt-out evidence is kept until one month after sending to the address "
    "stopped (one year under a measures order), by this sender's policy longer "
    "(Specified Electronic Mail Act, Ordinance Art. 4(2); CR-2)."
)
IMPORT_HOLD_REASON = (
    "The record of a list received from a third party, with the addresses it held, is kept "
    "for three years (APPI Art. 30; DS-4)."
)


def _not_found(subscriber_id: int) -> NotFound:
    return NotFound(f"There is no subscriber {subscriber_id}.")


async def export_subscriber(
    session: AsyncSession, hasher: AddressHasher, principal: Principal, subscriber_id: int
) -> SubscriberExport:
    """DS-1 (APPI Art. 33): everything held about the person: the profile, subscriptions,
    every consent and opt-out event naming the address with its evidence, wording and hold
    (CR-1, CR-2), suppressions of the address, deliveries, and the imports it came from with
    their acquisition records (DS-4). The export itself is audited (DS-6).

    A key bound to senders discloses what its senders hold of a person they hold: their
    subscriptions, events, deliveries, imports and suppressions, and the person's profile (one
    per address, shared); never another sender's records (DS-1, DS-6)."""
    senders = principal.senders
    subscriber = await repo.get_subscriber(session, subscriber_id, senders=senders)
    if subscriber is None:
        raise _not_found(subscriber_id)
    now = utcnow()
    subscriptions = await repo.subscriptions_of(session, subscriber.id, senders)
    events = await repo.events_of_address(session, subscriber.email, senders)
    holds = await compute_holds(session, [held_event(event) for event, _ in events], now)
    suppressions = await admin_service.suppression_status(
        session, hasher, subscriber.email, senders
    )
    deliveries = await repo.deliveries_of(session, subscriber.id, senders)
    imports = await repo.import_records_of(session, subscriber.email, senders)
    export = SubscriberExport(
        exported_at=now,
        subscriber=ExportedProfile.model_validate(subscriber, from_attributes=True),
        subscriptions=[
            ExportedSubscription(
                id=s.id,
                list_id=s.list_id,
                list_name=mailing_list.name,
                sender_id=sender.id,
                sender_name=sender.name,
                status=s.status,
                basis=s.basis,
                requires_confirmation=s.requires_confirmation,
                confirmed_at=s.confirmed_at,
                grant_event_id=s.grant_event_id,
                confirm_event_id=s.confirm_event_id,
                language=s.language,
                list_language=mailing_list.language,
                created_at=s.created_at,
                updated_at=s.updated_at,
            )
            for s, mailing_list, sender in subscriptions
        ],
        consent_events=[
            ExportedEvent.model_validate(
                {
                    **{name: getattr(event, name) for name in ConsentEventOut.model_fields},
                    "consent_text": wording,
                    "retain_until": holds[event.id],
                }
            )
            for event, wording in events
        ],
        suppressions=suppressions.suppressions,
        deliveries=[
            ExportedDelivery(
                id=d.id,
                campaign_id=campaign.id,
                campaign_name=campaign.name,
                list_id=campaign.list_id,
                sender_id=campaign.sender_id,
                status=d.status,
                attempts=d.attempts,
                sent_at=d.sent_at,
                smtp_response=d.smtp_response,
                consent_event_id=d.consent_event_id,
                created_at=d.created_at,
            )
            for d, campaign in deliveries
        ],
        imports=[
            ExportedImport(
                import_id=source.id,
                list_id=source.list_id,
                provider_name=source.provider_name,
                provider_address=source.provider_address,
                provider_representative=source.provider_representative,
                acquisition_circumstances=source.acquisition_circumstances,
                received_at=source.received_at,
                items=source.items,
                imported_at=source.created_at,
                retain_until=source.retain_until,
                row_number=item.row_number,
                outcome=item.outcome,
                consent_event_id=item.consent_event_id,
                detail=item.detail,
            )
            for item, source in imports
        ],
    )
    # Counts only: the export's content is the person's data.
    await record_audit(
        session,
        principal,
        "subscriber.export",
        "subscriber",
        subscriber.id,
        {
            "subscriptions": len(export.subscriptions),
            "consent_events": len(export.consent_events),
            "deliveries": len(export.deliveries),
            "imports": len(export.imports),
        },
    )
    return export


async def erase_subscriber(
    session: AsyncSession,
    hasher: AddressHasher,
    principal: Principal,
    subscriber_id: int,
    *,
    outbox_dir: Path | None = None,
) -> ErasureReport:
    """DS-3 (APPI Art. 35), in one unit of work:

    - every consent and opt-out event of the address gets its hold (CR-2) computed while the
      delivery history it depends on still exists; sending stops today;
    - the profile and its attributes, the subscriptions, the delivery history and the outbox
      rows are deleted. Deliveries not yet handed to SMTP go with them, so a worker that
      claimed one finds nothing in its send window (SG-2);
    - the events themselves are kept, with the address, until their hold (a legal hold); the
      foreign key sets their subscriber_id to NULL. Import records naming the address keep
      their own three-year hold (DS-4);
    - a global suppression stored only as the keyed hash of the address, so that it is never
      mailed again, whoever imports it or records consent for it; only the person's own
      confirmed opt-in lifts it (OO-6);
    - an audit entry without the address (DS-6);
    - the file transport's copies in ``outbox_dir`` of every mail to the person, found by the
      keyed-hash tag in their names (``mail_files`` in the report).

    Erasure removes the whole person, and its global suppression stops every sender's mail to
    the address. So a key bound to senders erases only a person no other sender holds; for
    one another sender holds too it is a 409 (naming neither that sender nor its records),
    and the erasure is done with a key bound to no sender (DS-3, DS-6).
    """
    senders = principal.senders
    found = await repo.get_subscriber(session, subscriber_id, senders=senders)
    if found is None:
        raise _not_found(subscriber_id)
    if senders is not None and await repo.held_elsewhere(
        session, subscriber_id, found.email, senders
    ):
        raise Conflict(
            "This person also has records held for a sender outside this key's senders; an "
            "erasure removes the whole person and stops every sender's mail (DS-3), so it "
            "needs an admin key not bound to senders."
        )
    email = found.email  # an address never changes (DS-2)
    # Lock order: the events (as the purge does), then the subscriptions (as an opt-out or a
    # signup does), then the person; every path takes them in this order, so none deadlocks.
    events = await repo.held_events_of_address(session, email)
    await repo.lock_subscriptions(session, subscriber_id)
    subscriber = await repo.get_subscriber(session, subscriber_id, for_update=True)
    if subscriber is None:  # erased meanwhile by a concurrent request
        raise _not_found(subscriber_id)
    address_hash = hasher(email)
    attributes = len(subscriber.attributes or {})
    now = utcnow()

    holds = await compute_holds(session, events, now)
    await repo.set_retain_until(
        session, {e.id: holds[e.id] for e in events if holds[e.id] != e.retain_until}
    )

    unsent = await repo.count_unsent_deliveries(session, subscriber_id)
    outbox = await repo.delete_outbox_of(session, subscriber_id)
    deliveries = await repo.delete_deliveries_of(session, subscriber_id)
    subscriptions = await repo.delete_subscriptions_of(session, subscriber_id)
    profile = await repo.delete_subscriber(session, subscriber_id)
    session.expunge(subscriber)

    await subscriptions_repo.upsert_suppression(
        session,
        address_hash=address_hash,
        scope=SuppressionScope.GLOBAL,
        scope_ref=0,
        reason=SuppressionReason.ERASURE,
        consent_event_id=None,
    )
    # An earlier global suppression (a hard bounce) stays as it was: it suppresses as well.
    suppression = next(
        s
        for s in await subscriptions_repo.find_suppressions(session, address_hash)
        if s.scope == SuppressionScope.GLOBAL
    )
    import_items, import_until = await repo.import_hold_of(session, email)
    # The file transport's copies of the mails to the person (a development outbox) go too.
    mail_files = (
        await asyncio.to_thread(remove_files_of, outbox_dir, address_hash) if outbox_dir else 0
    )

    deleted = ErasureDeleted(
        profile=profile,
        attributes=attributes,
        subscriptions=subscriptions,
        deliveries=deliveries,
        unsent_deliveries_cancelled=unsent,
        outbox_messages=outbox,
        mail_files=mail_files,
    )
    held = ErasureHeld(
        consent_events=HeldRecords(
            count=len(events),
            until=max(holds.values(), default=None),
            reason=CONSENT_HOLD_REASON,
        ),
        import_records=HeldRecords(
            count=import_items, until=import_until, reason=IMPORT_HOLD_REASON
        ),
    )
    await record_audit(
        session,
        principal,
        "subscriber.erase",
        "subscriber",
        subscriber_id,
        {
            "deleted": deleted.model_dump(),
            "held_consent_events": held.consent_events.count,
            "held_until": held.consent_events.until.isoformat()
            if held.consent_events.until
            else None,
            "held_import_items": import_items,
        },
    )
    log.info("subscriber %s erased; %s consent events held", subscriber_id, len(events))
    return ErasureReport(
        subscriber_id=subscriber_id,
        erased_at=now,
        deleted=deleted,
        held=held,
        suppression=ErasureSuppression(
            scope=suppression.scope,
            reason=suppression.reason,
            since=suppression.created_at,
            stored_as="keyed hash of the address (HMAC-SHA256)",
        ),
    )
