"""The consent domain as the admin API sees it: consent an operator records with its evidence,
opt-outs received by phone, letter or email, the ledger and its export, and whether an address
is suppressed. The changes themselves are made by ``service.record_consent`` and
``service.record_optout``; this module checks the evidence, resolves the opt-out's scope and
audits each write in the same unit of work (DS-6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.addresses import AddressHasher, mask_address
from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.scope import SenderIds, covers
from app.auth.service import Principal
from app.errors import InvalidInput, NotFound
from app.export_formats import csv_stream, json_array_stream, plain
from app.lists import repository as lists_repo
from app.models import ConsentEvent, Subscription
from app.models.enums import (
    ConsentMethod,
    LegalBasis,
    SuppressionReason,
    SuppressionScope,
)
from app.senders import repository as senders_repo
from app.subscriptions import admin_repository as admin_repo
from app.subscriptions import repository as repo
from app.subscriptions import service
from app.subscriptions.repository import GateVerdict
from app.subscriptions.schemas import (
    EVIDENCE_MODELS,
    ConsentCreate,
    OptInEvidence,
    OptOutCreate,
    OptOutEffect,
    OptOutRecorded,
    SuppressionLiftOut,
    SuppressionOut,
    SuppressionStatus,
)

# What each basis must be able to show, in the words of docs/rules.md (CC-4, CR-1).
EVIDENCE_NEEDED = {
    LegalBasis.OPT_IN: "where and how consent was given (evidence.source), and either the wording "
    "the person agreed to (consent_text) or the circumstances (evidence.circumstances)",
    LegalBasis.WRITTEN_NOTICE: "when the address was received in writing (evidence.received_on), "
    "who received it (evidence.received_by) and a reference to the card or form "
    "(evidence.document_ref)",
    LegalBasis.BUSINESS_RELATIONSHIP: "a transaction reference (evidence.transaction_ref) and its "
    "date (evidence.transaction_date)",
    LegalBasis.PUBLISHED_ADDRESS: "the URL the address was published at (evidence.url), when it "
    "was seen (evidence.seen_at) and that no refusal wording stood beside it "
    "(evidence.no_refusal_notice: true)",
}


def checked_evidence(
    basis: LegalBasis, evidence: dict[str, Any], consent_text: str | None
) -> dict[str, Any]:
    """CC-4, CR-1: the evidence each legal basis needs, or InvalidInput naming every missing or
    wrong field (``evidence.transaction_ref``...). Returns the evidence as it will be stored:
    what the operator gave, dates in ISO form."""
    model = EVIDENCE_MODELS[basis]
    try:
        parsed = model.model_validate(evidence)
    except ValidationError as exc:
        problems = "; ".join(
            f"evidence.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidInput(
            f"{problems}. The {basis.value} basis needs {EVIDENCE_NEEDED[basis]} (CC-4)."
        ) from None
    if isinstance(parsed, OptInEvidence) and not consent_text and not parsed.circumstances:
        raise InvalidInput(
            "consent_text or evidence.circumstances: required. The opt_in basis needs "
            f"{EVIDENCE_NEEDED[basis]} (CR-1)."
        )
    stored: dict[str, Any] = parsed.model_dump(mode="json", exclude_unset=True)
    return stored


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    event: ConsentEvent
    subscription: Subscription
    gate: GateVerdict


async def record_operator_consent(
    session: AsyncSession,
    hasher: AddressHasher,
    principal: Principal,
    *,
    list_id: int,
    data: ConsentCreate,
) -> ConsentRecord:
    """Record consent obtained elsewhere (CC-1, CC-4, CR-1): the evidence must hold what the
    basis needs; an address under suppression is refused with 409 and nothing is stored (OO-6);
    the grant is audited with the key that recorded it (DS-6). A list outside a bound key's
    senders is a 404, as an unknown one."""
    await _require_list(session, principal.senders, list_id)
    evidence = checked_evidence(data.basis, data.evidence, data.consent_text)
    recorded = await service.record_consent(
        session,
        hasher,
        list_id=list_id,
        email=data.email,
        basis=data.basis,
        method=data.method,
        obtained_at=data.obtained_at,
        evidence=evidence,
        consent_text=data.consent_text,
        origin=service.RequestOrigin(
            ip=data.ip, user_agent=data.user_agent, source_url=data.source_url
        ),
        recorded_by=principal.recorded_by,
        language=data.language.value if data.language else None,
    )
    decision = await repo.check_gate(session, recorded.subscription.subscriber_id, list_id)
    await record_audit(
        session,
        principal,
        "consent.record",
        "consent_event",
        recorded.event.id,
        {
            "list_id": list_id,
            "subscriber_id": recorded.subscription.subscriber_id,
            "email": mask_address(data.email),
            "basis": data.basis.value,
            "method": data.method.value,
            **({"language": data.language.value} if data.language else {}),
        },
    )
    return ConsentRecord(recorded.event, recorded.subscription, decision.verdict)


async def _optout_targets(
    session: AsyncSession, senders: SenderIds, data: OptOutCreate
) -> tuple[Literal["list", "sender", "global"], list[tuple[int, int | None]]]:
    """OO-5: the (sender, list) pairs an operator's opt-out covers. Unknown ids in the body are
    a 422 naming the field, as in POST /lists; so are those outside a bound key's senders, and
    "every sender" means every sender of the key (DS-6)."""
    if data.list_id is not None:
        mailing_list = await lists_repo.get_visible(session, senders, data.list_id)
        if mailing_list is None:
            raise InvalidInput(f"list_id: there is no list {data.list_id}.")
        if data.sender_id is not None and data.sender_id != mailing_list.sender_id:
            raise InvalidInput(
                f"sender_id: list {mailing_list.id} belongs to sender {mailing_list.sender_id}, "
                f"not {data.sender_id}."
            )
        return "list", [(mailing_list.sender_id, mailing_list.id)]
    if data.sender_id is not None:
        if (
            not covers(senders, data.sender_id)
            or await senders_repo.get(session, data.sender_id) is None
        ):
            raise InvalidInput(f"sender_id: there is no sender {data.sender_id}.")
        return "sender", [(data.sender_id, None)]
    every = await senders_repo.all_ids(session)
    # Every sender: one sender-wide suppression each, so "sender" like any other (one
    # vocabulary for answers, exports and the ledger).
    return "sender", [(sender_id, None) for sender_id in every if covers(senders, sender_id)]


async def record_operator_optout(
    session: AsyncSession, hasher: AddressHasher, principal: Principal, data: OptOutCreate
) -> OptOutRecorded:
    """OO-1: an opt-out received by phone, letter, email or otherwise, recorded by an operator,
    writes the same withdrawal event and suppression as the person's own click, and cancels
    queued deliveries in this unit of work (SG-2). Scope (OO-5): the list given; else every
    list of the sender given; else every sender of this installation, one opt-out each, and
    (for a key bound to no sender) a suppression of everything, so later senders are covered.

    An address Shodaku does not know still gets its suppression: the person asked, and a later
    import must not mail them (OO-1, OO-6). A repeat changes nothing and is harmless.
    """
    scope, targets = await _optout_targets(session, principal.senders, data)
    method = ConsentMethod(data.channel.value)
    effects: list[OptOutEffect] = []
    for sender_id, list_id in targets:
        outcome = await service.record_optout(
            session,
            hasher,
            email=data.email,
            sender_id=sender_id,
            list_id=list_id,
            method=method,
            reason=SuppressionReason.OPTOUT_REQUEST,
            recorded_by=principal.recorded_by,
            channel=data.channel.value,
            note=data.note,
        )
        effects.append(
            OptOutEffect(
                sender_id=sender_id,
                list_id=list_id,
                changed=outcome.changed,
                event_ids=outcome.event_ids,
                unsubscribed_list_ids=outcome.unsubscribed_list_ids,
                cancelled_deliveries=outcome.cancelled_deliveries,
            )
        )
    if data.list_id is None and data.sender_id is None and principal.senders is None:
        # Every sender of the installation means the ones created later too (OO-5, OO-6): the
        # address is also suppressed for everything, as an erasure leaves it.
        address_hash = hasher(data.email)
        existed = any(
            s.scope == SuppressionScope.GLOBAL
            for s in await repo.find_suppressions(session, address_hash)
        )
        await repo.upsert_suppression(
            session,
            address_hash=address_hash,
            scope=SuppressionScope.GLOBAL,
            scope_ref=0,
            reason=SuppressionReason.OPTOUT_REQUEST,
            consent_event_id=None,
        )
        scope = "global"
        global_changed = not existed
    else:
        global_changed = False
    subscriber = await repo.subscriber_by_email(session, data.email)
    if subscriber is not None and principal.senders is not None:
        # The entry a bound key reads back must not tell it that another sender holds them.
        subscriber = await repo.visible_subscriber(session, principal.senders, subscriber.id)
    await record_audit(
        session,
        principal,
        "optout.record",
        "subscriber" if subscriber else "address",
        subscriber.id if subscriber else None,
        {
            "email": mask_address(data.email),
            "channel": data.channel.value,
            "scope": scope,
            "list_id": data.list_id,
            "sender_id": data.sender_id,
            "event_ids": [i for effect in effects for i in effect.event_ids],
        },
    )
    return OptOutRecorded(
        email=data.email,
        scope=scope,
        changed=global_changed or any(effect.changed for effect in effects),
        effects=effects,
    )


async def _require_list(session: AsyncSession, senders: SenderIds, list_id: int | None) -> None:
    """A list outside a bound key's senders is answered as an unknown one: 404 (DS-6)."""
    if list_id is not None and await lists_repo.get_visible(session, senders, list_id) is None:
        raise NotFound(f"There is no list {list_id}.")


async def consent_events(
    session: AsyncSession,
    principal: Principal,
    *,
    list_id: int | None,
    email: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[ConsentEvent], str | None]:
    """The ledger, newest first (CR-1): grants, confirmations and withdrawals; a bound key's
    senders' events only (DS-6)."""
    await _require_list(session, principal.senders, list_id)
    rows = await repo.latest_events(
        session,
        list_id=list_id,
        email=email,
        since=since,
        before_id=before_id,
        limit=limit + 1,
        senders=principal.senders,
    )
    return keyset_page(rows, limit, lambda e: e.id)


EXPORT_BATCH = 500
EXPORT_COLUMNS = (
    "id",
    "kind",
    "occurred_at",
    "email",
    "subscriber_id",
    "sender_id",
    "list_id",
    "basis",
    "method",
    "obtained_at",
    "source_url",
    "ip",
    "user_agent",
    "purpose",
    "consent_text_hash",
    "consent_text",
    "evidence",
    "double_opt_in_requested_at",
    "confirmed_at",
    "recorded_by",
    "scope",
    "channel",
    "note",
    "created_at",
)


def _export_record(event: ConsentEvent, wording: str | None) -> dict[str, Any]:
    return {
        column: plain(wording if column == "consent_text" else getattr(event, column))
        for column in EXPORT_COLUMNS
    }


async def _event_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    list_id: int | None,
    email: str | None,
    senders: SenderIds,
) -> AsyncIterator[Sequence[tuple[ConsentEvent, str | None]]]:
    # One short session per batch: on SQLite every transaction holds the write lock, so a
    # session kept open for a long download would stall every writer meanwhile.
    after_id = 0
    while True:
        async with sessionmaker() as session:
            rows = await admin_repo.events_with_wording(
                session,
                list_id=list_id,
                email=email,
                after_id=after_id,
                limit=EXPORT_BATCH,
                senders=senders,
            )
        if rows:
            yield rows
            after_id = rows[-1][0].id
        if len(rows) < EXPORT_BATCH:
            return


async def _records(
    batches: AsyncIterator[Sequence[tuple[ConsentEvent, str | None]]],
) -> AsyncIterator[list[dict[str, Any]]]:
    async for rows in batches:
        yield [_export_record(event, wording) for event, wording in rows]


async def consent_export(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    list_id: int | None,
    email: str | None,
    fmt: Literal["csv", "json"],
) -> AsyncIterator[bytes]:
    """CR-3: every ledger event of the list (or address, or installation) with its evidence
    and the exact consent wording, as CSV or as one JSON array, streamed in batches fetched by
    keyset: memory stays bounded however long the ledger is.

    The filters are checked now, so an unknown list is a 404 before the download starts. The
    export is audited (DS-6) in the request's unit of work, committed before the download.
    A bound key exports its senders' events only (DS-6).
    """
    await _require_list(session, principal.senders, list_id)
    await record_audit(
        session,
        principal,
        "consent.export",
        "list" if list_id is not None else "ledger",
        list_id,
        {"format": fmt, "email": mask_address(email) if email else None},
    )
    records = _records(
        _event_batches(sessionmaker, list_id=list_id, email=email, senders=principal.senders)
    )
    return csv_stream(EXPORT_COLUMNS, records) if fmt == "csv" else json_array_stream(records)


async def suppression_status(
    session: AsyncSession, hasher: AddressHasher, email: str, senders: SenderIds = None
) -> SuppressionStatus:
    """Whether and why an address must not be mailed (SG-2, OO-6, DS-3): suppressions are
    matched by the keyed hash of the address, so they answer even after an erasure.

    A bound key sees the global suppressions (they stop its own mail too) and those of its
    senders and their lists, never another sender's (DS-6)."""
    found = await repo.find_suppressions(session, hasher(email))
    all_lifts = await repo.lifts_of(session, [s.id for s in found])
    list_ids = [s.scope_ref for s in found if s.scope == SuppressionScope.LIST]
    senders_of_lists = await lists_repo.senders_of(
        session, list_ids + [lift.list_id for lift in all_lifts]
    )
    lifts: dict[int, list[SuppressionLiftOut]] = {}
    for lift in all_lifts:
        # A bound key does not learn that the person came back on another sender's list.
        if not covers(senders, senders_of_lists.get(lift.list_id)):
            continue
        lifts.setdefault(lift.suppression_id, []).append(
            SuppressionLiftOut(
                list_id=lift.list_id, consent_event_id=lift.confirm_event_id, since=lift.created_at
            )
        )
    entries = []
    blocking = False
    for suppression in found:
        sender_id: int | None = None
        list_id: int | None = None
        if suppression.scope == SuppressionScope.SENDER:
            sender_id = suppression.scope_ref
        elif suppression.scope == SuppressionScope.LIST:
            list_id = suppression.scope_ref
            sender_id = senders_of_lists.get(list_id)
        if suppression.scope != SuppressionScope.GLOBAL and not covers(senders, sender_id):
            continue
        lifted_for = lifts.get(suppression.id, [])
        # Only a list-only suppression lifted for its own list blocks nothing any more: one of
        # a sender or of everything still covers every other list (OO-6).
        blocking = blocking or not (
            suppression.scope == SuppressionScope.LIST
            and any(lift.list_id == suppression.scope_ref for lift in lifted_for)
        )
        entries.append(
            SuppressionOut(
                scope=suppression.scope,
                sender_id=sender_id,
                list_id=list_id,
                reason=suppression.reason,
                since=suppression.created_at,
                consent_event_id=suppression.consent_event_id,
                lifted_for=lifted_for,
            )
        )
    return SuppressionStatus(email=email, suppressed=blocking, suppressions=entries)
