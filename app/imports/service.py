"""Imports of lists obtained from others (DS-4, CC-4, OO-6).

A list bought or received from a third party carries no consent for us. Each import records
where the list came from (the acquisition record, kept three years, APPI Art. 30) and every
address it brought. A row counts as consented only if it carries consent evidence that names
this list's sender and holds what its legal basis needs; it then gets exactly what an operator's
recorded consent gets (``record_consent``: a grant event, here with method ``import`` and
recorded by ``import:<id>``, and an active subscription). Every other row becomes a subscriber
with no subscription at all: the send gate says no, and nothing is ever mailed to it, not even
a request to opt in, which would itself be a specified email. A suppressed address is reported
and left exactly as it is (OO-6).

Unlike a request's single unit of work, an import commits one batch at a time, so that a list
of 100,000 rows neither holds the database (SQLite has one writer) nor memory for its whole
length. The acquisition record is committed first; each batch commits its rows together with
the record's running counts, so whatever an unexpected failure leaves behind is consistent and
counted, and running the same file again completes it without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.addresses import AddressHasher
from app.api_fields import keyset_page
from app.audit.service import record_audit
from app.auth.service import Principal
from app.errors import InvalidInput, NotFound
from app.imports import repository as repo
from app.imports.csv_reader import CsvUpload, SourceRow
from app.imports.schemas import (
    Acquisition,
    ImportCreate,
    ImportForm,
    ImportOutcome,
    ImportReport,
    ImportRow,
    ImportState,
    RowError,
    RowNote,
)
from app.lists import repository as lists_repo
from app.models import ImportItem, ListImport
from app.models.base import utcnow
from app.models.enums import ConsentMethod
from app.subscriptions import repository as subscriptions_repo
from app.subscriptions import service as subscriptions
from app.subscriptions.admin_service import checked_evidence
from app.subscriptions.schemas import ConsentCreate

log = logging.getLogger(__name__)

# Rows per transaction: large enough that a commit costs little per row, small enough that
# SQLite's single writer is handed back to signups and opt-outs within a moment.
BATCH_SIZE = 1000
# The answer lists at most this many refused rows (and notes); the counts count them all.
REPORT_LIMIT = 1000
RETENTION_YEARS = 3


def retain_until(created_at: datetime) -> datetime:
    """DS-4: the acquisition record and its addresses are kept three years from the import.
    An import made on 29 February is kept until 1 March: never less than three years."""
    try:
        return created_at.replace(year=created_at.year + RETENTION_YEARS)
    except ValueError:
        return created_at.replace(year=created_at.year + RETENTION_YEARS, month=3, day=1)


@dataclass(frozen=True, slots=True)
class _Target:
    import_id: int
    list_id: int
    sender_id: int
    # How consent fields are named in row errors: "consent.basis" in JSON, "basis" in a CSV.
    consent_prefix: str

    @property
    def recorded_by(self) -> str:
        return f"import:{self.import_id}"


@dataclass(frozen=True, slots=True)
class _Consent:
    data: ConsentCreate
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Row:
    number: int
    email: str
    name: str | None
    consent: _Consent | None  # usable consent for this sender, if any
    note: str | None = None  # why a consent given with the row was not used


@dataclass
class _Tally:
    rows: int = 0
    consented: int = 0
    unconsented: int = 0
    suppressed: int = 0
    invalid: int = 0
    invalid_rows: list[RowError] = field(default_factory=list)
    notes: list[RowNote] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.consented + self.unconsented

    def refuse(self, number: int, error: str) -> None:
        self.invalid += 1
        if len(self.invalid_rows) < REPORT_LIMIT:
            self.invalid_rows.append(RowError(row=number, error=error))

    def note(self, number: int, note: str) -> None:
        if len(self.notes) < REPORT_LIMIT:
            self.notes.append(RowNote(row=number, note=note))

    def plus(self, other: _Tally) -> _Tally:
        return _Tally(
            rows=self.rows + other.rows,
            consented=self.consented + other.consented,
            unconsented=self.unconsented + other.unconsented,
            suppressed=self.suppressed + other.suppressed,
            invalid=self.invalid + other.invalid,
            invalid_rows=(self.invalid_rows + other.invalid_rows)[:REPORT_LIMIT],
            notes=(self.notes + other.notes)[:REPORT_LIMIT],
        )

    def counts(self, state: ImportState) -> dict[str, Any]:
        return {
            "state": state.value,
            "rows": self.rows,
            "imported": self.imported,
            "consented": self.consented,
            "unconsented": self.unconsented,
            "suppressed": self.suppressed,
            "invalid": self.invalid,
        }


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in error['loc']) or 'row'}: {error['msg']}"
        for error in exc.errors()
    )


def _sender_reference(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
        return int(value.strip())
    raise ValueError("must be the id of the sender the consent was given to")


class _Refused(Exception):
    """A row that cannot be imported, and why (reported with its row number)."""


def _check_consent(
    raw: dict[str, Any], email: str, target: _Target
) -> tuple[_Consent | None, str | None]:
    """CC-4, DS-4: the row's consent, checked exactly as POST /lists/{id}/consents checks one
    (``ConsentCreate``, then ``checked_evidence``); _Refused names the field at fault. Complete
    evidence that does not name this list's sender is no consent for us: (None, why)."""
    p = target.consent_prefix
    given = dict(raw)
    sender_ref = given.pop("sender_id", None)
    if "email" in given:
        raise _Refused(f"{p}email: not allowed here; the row's email is the address")
    try:
        data = ConsentCreate.model_validate({**given, "email": email})
    except ValidationError as exc:
        raise _Refused(_describe(exc, p)) from None
    try:
        evidence = checked_evidence(data.basis, data.evidence, data.consent_text)
    except InvalidInput as exc:
        raise _Refused(exc.detail) from None
    try:
        sender_id = _sender_reference(sender_ref)
    except ValueError as exc:
        raise _Refused(f"{p}sender_id: {exc}") from None
    if sender_id == target.sender_id:
        return _Consent(data, evidence), None
    if sender_id is None:
        return None, (
            f"the consent does not name the sender it was given to ({p}sender_id), so it is "
            "no consent for this sender: imported without consent (DS-4)."
        )
    return None, (
        f"the consent was given to sender {sender_id}, not to this list's sender "
        f"{target.sender_id}: imported without consent (DS-4)."
    )


def _parse(source: SourceRow, target: _Target) -> _Row:
    """One row checked on its own; _Refused says why it cannot be imported."""
    data = source.data
    if not isinstance(data, dict):
        raise _Refused("row: must be an object {email, name?, consent?}")
    if data.get("email") == "":
        raise _Refused("email: required")
    try:
        row = ImportRow.model_validate(data)
    except ValidationError as exc:
        raise _Refused(_describe(exc)) from None
    if row.consent is None:
        return _Row(source.number, row.email, row.name, None)
    consent, note = _check_consent(row.consent, row.email, target)
    return _Row(source.number, row.email, row.name, consent, note)


async def _covering_suppressions(
    session: AsyncSession, hashes: dict[str, str], target: _Target
) -> set[str]:
    """OO-6, SG-2: the addresses of this batch under a suppression covering this list (global,
    its sender, or the list), decided by the consent gate's own rule."""
    candidates = await repo.suppression_candidates(session, set(hashes.values()))
    return {
        email
        for email, address_hash in hashes.items()
        if address_hash in candidates
        and await subscriptions_repo.is_suppressed(
            session, address_hash, target.sender_id, target.list_id
        )
    }


async def _import_batch(
    session: AsyncSession, hasher: AddressHasher, target: _Target, batch: Sequence[SourceRow]
) -> _Tally:
    """DS-4, CC-4, OO-6: one batch, in the caller's transaction."""
    tally = _Tally(rows=len(batch))
    rows: list[_Row] = []
    first_in_batch: dict[str, int] = {}
    for source in batch:
        try:
            parsed = _parse(source, target)
        except _Refused as exc:
            tally.refuse(source.number, str(exc))
            continue
        if parsed.email in first_in_batch:
            tally.refuse(
                source.number,
                f"duplicate address: the same address is in row {first_in_batch[parsed.email]}, "
                "which was used",
            )
        else:
            first_in_batch[parsed.email] = source.number
            rows.append(parsed)
    earlier = await repo.rows_already_imported(session, target.import_id, first_in_batch)
    for row in [r for r in rows if r.email in earlier]:
        tally.refuse(
            row.number,
            f"duplicate address: the same address is in row {earlier[row.email]}, which was used",
        )
    rows = [r for r in rows if r.email not in earlier]

    hashes = {row.email: hasher(row.email) for row in rows}
    suppressed = await _covering_suppressions(session, hashes, target)
    # Suppressed addresses get no profile: an erased person must not come back by an import.
    known = await repo.subscriber_ids(session, suppressed)
    subscriber_ids = await repo.get_or_create_subscribers(
        session, [(r.email, hashes[r.email], r.name) for r in rows if r.email not in suppressed]
    )
    items: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {
            "import_id": target.import_id,
            "row_number": row.number,
            "email": row.email,
            "subscriber_id": subscriber_ids.get(row.email) or known.get(row.email),
            "consent_event_id": None,
            "detail": row.note,
            "created_at": utcnow(),
        }
        if row.email in suppressed:
            item["outcome"] = ImportOutcome.SUPPRESSED.value
            item["detail"] = "suppressed: an opt-out or erasure covers this list; nothing changed"
            tally.suppressed += 1
        elif row.consent is not None:
            try:
                recorded = await _record_consent(session, hasher, target, row.email, row.consent)
            except subscriptions.AddressSuppressed:
                # Suppressed since the check above (a concurrent opt-out): it wins.
                item["outcome"] = ImportOutcome.SUPPRESSED.value
                tally.suppressed += 1
            else:
                item["outcome"] = ImportOutcome.CONSENTED.value
                item["consent_event_id"] = recorded.event.id
                tally.consented += 1
        else:
            item["outcome"] = ImportOutcome.UNCONSENTED.value
            tally.unconsented += 1
            if row.note:
                tally.note(row.number, row.note)
        items.append(item)
    await repo.add_items(session, items)
    return tally


async def _record_consent(
    session: AsyncSession, hasher: AddressHasher, target: _Target, email: str, consent: _Consent
) -> subscriptions.RecordedConsent:
    """CC-1, CC-4, CR-1: the same recording as an operator's consent, by ``record_consent``;
    the event says it came with this import (method ``import``, recorded by ``import:<id>``)
    and keeps, in its evidence, how the consent was said to have been obtained.

    Running the same import again appends another grant naming the new import (the ledger is
    append-only, and each acquisition record points to its own evidence) but the subscriber
    and the subscription stay one each.
    """
    data = consent.data
    return await subscriptions.record_consent(
        session,
        hasher,
        list_id=target.list_id,
        email=email,
        basis=data.basis,
        method=ConsentMethod.IMPORT,
        obtained_at=data.obtained_at,
        evidence={**consent.evidence, "original_method": data.method.value},
        consent_text=data.consent_text,
        origin=subscriptions.RequestOrigin(
            ip=data.ip, user_agent=data.user_agent, source_url=data.source_url
        ),
        recorded_by=target.recorded_by,
    )


async def _sender_of_list(
    sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, list_id: int
) -> int:
    """The list's sender; a list outside a bound key's senders is unknown to it (DS-6)."""
    async with sessionmaker() as session:
        mailing_list = await lists_repo.get_visible(session, principal.senders, list_id)
    if mailing_list is None:
        raise InvalidInput(f"list_id: there is no list {list_id}.")
    return mailing_list.sender_id


async def _run(
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: AddressHasher,
    principal: Principal,
    *,
    list_id: int,
    sender_id: int,
    acquisition: Acquisition,
    batches: AsyncGenerator[list[SourceRow], None],
    consent_prefix: str,
    ignored_columns: list[str],
) -> ImportReport:
    """DS-4: store the acquisition record, then the rows a batch per transaction, keeping the
    record's counts in step; audit the import with its counts, never an address (DS-6)."""
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        record = await repo.add_import(
            session,
            ListImport(
                list_id=list_id,
                provider_name=acquisition.provider_name,
                provider_address=acquisition.provider_address,
                provider_representative=acquisition.provider_representative,
                acquisition_circumstances=acquisition.acquisition_circumstances,
                received_at=acquisition.received_at,
                items={"provided": acquisition.items},
                counts=_Tally().counts(ImportState.RUNNING),
                recorded_by=principal.recorded_by,
                created_at=now,
                retain_until=retain_until(now),
            ),
        )
    target = _Target(record.id, list_id, sender_id, consent_prefix)
    tally = _Tally()
    try:
        async with contextlib.aclosing(batches):
            async for batch in batches:
                async with sessionmaker() as session, session.begin():
                    done = tally.plus(await _import_batch(session, hasher, target, batch))
                    await repo.set_counts(
                        session, target.import_id, done.counts(ImportState.RUNNING)
                    )
                tally = done
    except BaseException:
        # What the committed batches brought stands, and the record says how far it got.
        log.exception("import %s stopped after %s rows", target.import_id, tally.rows)
        with contextlib.suppress(Exception):
            await _finish(sessionmaker, principal, target, tally, ImportState.FAILED)
        raise
    await _finish(sessionmaker, principal, target, tally, ImportState.COMPLETE)
    log.info(
        "import %s list=%s rows=%s consented=%s unconsented=%s suppressed=%s invalid=%s",
        target.import_id,
        list_id,
        tally.rows,
        tally.consented,
        tally.unconsented,
        tally.suppressed,
        tally.invalid,
    )
    return ImportReport(
        import_id=target.import_id,
        imported=tally.imported,
        consented=tally.consented,
        unconsented=tally.unconsented,
        suppressed=tally.suppressed,
        invalid=tally.invalid_rows,
        invalid_count=tally.invalid,
        notes=tally.notes,
        rows=tally.rows,
        ignored_columns=ignored_columns,
    )


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    target: _Target,
    tally: _Tally,
    state: ImportState,
) -> None:
    async with sessionmaker() as session, session.begin():
        counts = tally.counts(state)
        await repo.set_counts(session, target.import_id, counts)
        await record_audit(
            session,
            principal,
            "import.create",
            "import",
            target.import_id,
            {"list_id": target.list_id, **counts},
        )


def _chunks(rows: Sequence[Any], size: int) -> Iterator[list[SourceRow]]:
    for start in range(0, len(rows), size):
        yield [
            SourceRow(start + offset + 1, data)
            for offset, data in enumerate(rows[start : start + size])
        ]


async def _list_batches(rows: Sequence[Any]) -> AsyncGenerator[list[SourceRow], None]:
    for batch in _chunks(rows, BATCH_SIZE):
        yield batch


async def _csv_batches(upload: CsvUpload) -> AsyncGenerator[list[SourceRow], None]:
    # The file is read in a thread: the event loop keeps serving other requests meanwhile.
    batches = upload.batches(BATCH_SIZE)
    try:
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            yield batch
    finally:
        batches.close()  # before the upload is closed under it


async def import_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: AddressHasher,
    principal: Principal,
    data: ImportCreate,
) -> ImportReport:
    """POST /imports as JSON (DS-4). Row numbers count the ``rows`` array from 1."""
    sender_id = await _sender_of_list(sessionmaker, principal, data.list_id)
    return await _run(
        sessionmaker,
        hasher,
        principal,
        list_id=data.list_id,
        sender_id=sender_id,
        acquisition=data.acquisition,
        batches=_list_batches(data.rows),
        consent_prefix="consent.",
        ignored_columns=[],
    )


async def import_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: AddressHasher,
    principal: Principal,
    form: ImportForm,
    file: IO[bytes],
) -> ImportReport:
    """POST /imports as multipart/form-data with a CSV file (DS-4). The file is checked whole
    before anything is stored; row numbers are the spreadsheet's (the header is row 1)."""
    sender_id = await _sender_of_list(sessionmaker, principal, form.list_id)
    upload = await asyncio.to_thread(CsvUpload.open, file)
    return await _run(
        sessionmaker,
        hasher,
        principal,
        list_id=form.list_id,
        sender_id=sender_id,
        acquisition=Acquisition.model_validate(form.model_dump(exclude={"list_id"})),
        batches=_csv_batches(upload),
        consent_prefix="",
        ignored_columns=upload.columns.ignored,
    )


async def get_import(session: AsyncSession, principal: Principal, import_id: int) -> ListImport:
    """An import to a list outside a bound key's senders does not exist for it (DS-6)."""
    record = await repo.get(session, import_id)
    if (
        record is not None
        and principal.senders is not None
        and await lists_repo.get_visible(session, principal.senders, record.list_id) is None
    ):
        record = None
    if record is None:
        raise NotFound(f"There is no import {import_id}.")
    return record


async def list_imports(
    session: AsyncSession,
    principal: Principal,
    *,
    list_id: int | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[ListImport], str | None]:
    rows = await repo.page(
        session, senders=principal.senders, list_id=list_id, before_id=before_id, limit=limit + 1
    )
    return keyset_page(rows, limit, lambda r: r.id)


async def import_items(
    session: AsyncSession,
    principal: Principal,
    import_id: int,
    *,
    outcome: ImportOutcome | None,
    after_id: int | None,
    limit: int,
) -> tuple[list[ImportItem], str | None]:
    """The addresses an import brought and what became of each, in file order (DS-4)."""
    await get_import(session, principal, import_id)
    rows = await repo.items_page(
        session,
        import_id=import_id,
        outcome=outcome.value if outcome else None,
        after_id=after_id,
        limit=limit + 1,
    )
    return keyset_page(rows, limit, lambda r: r.id)
