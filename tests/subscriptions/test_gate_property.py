"""SG-1: over random histories of signups, confirmations, recorded consents, opt-outs, hard
bounces and erasures, the consent gate says "mailable" exactly when the rules of COMPLIANCE.md
say so.

The rules, as a small pure-Python model (CC-1, CC-3, SG-1, SG-2, SG-4, OO-5, OO-6, DS-3): an
address may be mailed for a list iff it has an active subscription resting on a grant with a
legal basis, confirmed if the grant came through a double opt-in door (or through any signup while
the address was suppressed), and it is not suppressed for that list. A suppression (of the list,
of the list's sender, or of everything: an opt-out, a hard bounce, an erasure) blocks a list
until the person's own confirmation of a signup to that very list, later than the suppression's
latest refusal (OO-6): the confirmation of one list never reaches another list of the sender, nor
another sender. An operator's recorded consent never lifts a suppression: it is refused and
changes nothing. The model keeps the history as numbered moments (when each suppression was last
written, when each list was last confirmed) and derives the verdicts from it; the database keeps
suppressions and per-list lifts: the two must agree.

Each Hypothesis example starts from empty tables (the fixtures give one database per test, and
Hypothesis runs many examples in it), builds the world (two senders: one with a double and a
single opt-in list, one with a list drawn double or single opt-in), applies the history through
the service layer one unit of work per step, and after every step compares the gate with the
model for every address and list, the suppression check that signups, imports and recorded
consents use, GET /suppressions' verdict, the ledger's new events with the ones the model
expects, and the ledger's older rows with what they were (CR-1: append-only; an erasure only
unlinks the person and sets the holds, DS-3).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import Principal
from app.config import Settings
from app.errors import InvalidToken
from app.models import (
    ApiKey,
    ConsentEvent,
    OutboxMessage,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionLift,
)
from app.models.enums import (
    ApiKeyScope,
    ConsentEventKind,
    ConsentMethod,
    LegalBasis,
    SubscriptionStatus,
    SuppressionReason,
)
from app.privacy.service import erase_subscriber
from app.runtime import Runtime
from app.sending.bounces import record_hard_bounce
from app.subscriptions import admin_service, service
from app.subscriptions import repository as repo
from app.subscriptions.repository import GateVerdict
from app.subscriptions.service import AddressSuppressed, RequestOrigin, UnsubscribeScope
from tests.subscriptions.world import CONSENT_TEXT, WEB, World, build_world, reset_tables

ADDRESSES = ("aiko@example.jp", "ben@example.com", "chika@example.net")
LISTS = ("doi", "soi", "other")  # the world's double opt-in, single opt-in, other sender's list
SENDER_OF = {"doi": "shop", "soi": "shop", "other": "other"}
GLOBAL = "*"


# --- the operations --------------------------------------------------------------------------


class Subscribe(NamedTuple):
    """The person signs up through the web form."""

    who: int
    lst: str


class Confirm(NamedTuple):
    """The person uses a confirm link: of the latest grant (age 0) or of an older one."""

    who: int
    lst: str
    age: int


class RecordConsent(NamedTuple):
    """An operator records consent obtained elsewhere, through the admin API."""

    who: int
    lst: str
    basis: LegalBasis


class OptOut(NamedTuple):
    """An operator records an opt-out received by phone: this list, or every list of its sender."""

    who: int
    lst: str
    sender_wide: bool


class Unsubscribe(NamedTuple):
    """The person uses the unsubscribe link of a mail from this list."""

    who: int
    lst: str
    sender_wide: bool


class HardBounce(NamedTuple):
    """A mail to the address was refused at RCPT with a 5xx: it is suppressed for every
    sender (SG-4)."""

    who: int


class Erase(NamedTuple):
    """An operator erases the person on request (DS-3): profile and subscriptions go, a
    suppression of every sender stays, as a keyed hash of the address."""

    who: int


Step = Subscribe | Confirm | RecordConsent | OptOut | Unsubscribe | HardBounce | Erase

_who = st.integers(0, len(ADDRESSES) - 1)
_lst = st.sampled_from(LISTS)


# --- the model -------------------------------------------------------------------------------


@dataclass
class ModelSubscription:
    status: SubscriptionStatus
    grant_id: int
    needs_confirmation: bool
    confirm_id: int | None = None


# A ledger event as the model predicts it: kind, address index, list key (None: every list of
# the sender), sender key.
EventShape = tuple[str, int, str | None, str]


# A suppression: (address index, scope, list key / sender key / GLOBAL).
SuppressionKey = tuple[int, str, str]


def _covers(key: SuppressionKey, lst: str) -> bool:
    _who, scope, ref = key
    return (scope, ref) in {("list", lst), ("sender", SENDER_OF[lst]), ("global", GLOBAL)}


@dataclass
class Model:
    double_opt_in: dict[str, bool]
    subscribers: set[int] = field(default_factory=set)
    subscriptions: dict[tuple[int, str], ModelSubscription] = field(default_factory=dict)
    grants: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    # CC-3: the grants that asked for confirmation (a mail with a link went out for them), and
    # those still outstanding: a later request does not close one; a withdrawal covering the
    # list, a confirmation, or a grant that needed none does.
    requests: set[int] = field(default_factory=set)
    open_requests: dict[tuple[int, str], set[int]] = field(default_factory=dict)
    # Grants whose person was erased: their confirm links lead nowhere any more (DS-3).
    erased_grants: set[int] = field(default_factory=set)
    # The history as numbered moments, one per step: when each suppression was last written
    # (an opt-out, a hard bounce, an erasure), and when the person last confirmed each list.
    now: int = 0
    refused_at: dict[SuppressionKey, int] = field(default_factory=dict)
    confirmed_at: dict[tuple[int, str], int] = field(default_factory=dict)
    # OO-7: when each suppression first began (a repeat keeps its time), and when each
    # confirmation mail was queued, for the current subscriber of the address.
    suppressed_at: dict[SuppressionKey, int] = field(default_factory=dict)
    mailed_at: dict[int, list[int]] = field(default_factory=dict)

    def held_back(self, who: int) -> bool:
        """OO-7: a suppressed address gets one confirmation mail a day (every step of a history
        falls in one day, until ``next_day``), among those queued since its newest suppression
        began. Suppressions are never deleted (a confirmation only sets one aside for a list),
        so one that was set aside still counts."""
        began = [t for key, t in self.suppressed_at.items() if key[0] == who]
        return bool(began) and any(t >= max(began) for t in self.mailed_at.get(who, []))

    def _refuse(self, key: SuppressionKey) -> None:
        self.refused_at[key] = self.now
        self.suppressed_at.setdefault(key, self.now)

    def blocks(self, key: SuppressionKey, lst: str) -> bool:
        """OO-6: a suppression covering the list blocks it until the person confirms a signup
        to that very list, after the suppression's latest refusal."""
        return (
            key in self.refused_at
            and _covers(key, lst)
            and self.confirmed_at.get((key[0], lst), -1) < self.refused_at[key]
        )

    def suppressed(self, who: int, lst: str) -> bool:
        """SG-2, OO-5, SG-4, DS-3, OO-6: the list itself, its sender, or everything, unless the
        person came back to this list."""
        return any(self.blocks(key, lst) for key in self.refused_at if key[0] == who)

    def in_force_everywhere(self, key: SuppressionKey) -> bool:
        """The suppression exists and no confirmation set it aside for any list."""
        return key in self.refused_at and all(
            self.blocks(key, lst) for lst in LISTS if _covers(key, lst)
        )

    def suppressed_somewhere(self, who: int) -> bool:
        """GET /suppressions' verdict: some suppression still blocks some list. Every one of a
        sender or of everything does (it covers lists that do not exist yet); one of a single
        list does until the person came back to that list."""
        return any(
            key[0] == who and (key[1] != "list" or self.blocks(key, key[2]))
            for key in self.refused_at
        )

    def gate(self, who: int, lst: str) -> tuple[GateVerdict, int | None]:
        """SG-1: the verdict and the consent event a delivery would rely on."""
        sub = self.subscriptions.get((who, lst))
        if sub is None:
            return GateVerdict.NO_CONSENT, None
        if self.suppressed(who, lst):
            return GateVerdict.SUPPRESSED, None
        if sub.status is SubscriptionStatus.ACTIVE and (
            not sub.needs_confirmation or sub.confirm_id is not None
        ):
            return GateVerdict.MAILABLE, sub.confirm_id or sub.grant_id
        return GateVerdict.NO_CONSENT, None

    def confirm_target(self, step: Confirm) -> int | None:
        grants = self.grants.get((step.who, step.lst), [])
        return grants[max(0, len(grants) - 1 - step.age)] if grants else None

    def predict(self, step: Step) -> tuple[str, list[EventShape]]:
        """What the service should answer and which events it should append."""
        match step:
            case Subscribe(who, lst):
                sub = self.subscriptions.get((who, lst))
                active = sub is not None and sub.status is SubscriptionStatus.ACTIVE
                if active and not self.suppressed(who, lst):
                    return "unchanged", []
                # CC-3; OO-6: a suppressed address must confirm even on a single opt-in list.
                needs = self.double_opt_in[lst] or self.suppressed(who, lst)
                if needs and self.held_back(who):
                    return "held_back", []  # OO-7
                return ("pending" if needs else "active"), [("grant", who, lst, SENDER_OF[lst])]
            case Confirm(who, lst):
                grant_id = self.confirm_target(step)
                if grant_id is None:
                    return "skipped", []
                if grant_id in self.erased_grants:
                    return "invalid_token", []
                sub = self.subscriptions[(who, lst)]
                confirmed = sub.status is SubscriptionStatus.ACTIVE and sub.confirm_id is not None
                if grant_id not in self.requests:  # no confirmation mail, no such link
                    return "invalid_token", []
                if confirmed:
                    return "already_confirmed", []
                # Issue #10.3: the link of any outstanding request of a pending subscription
                # confirms; a link whose request is over never (re)activates anything.
                if sub.status is SubscriptionStatus.PENDING and grant_id in self.open_requests.get(
                    (who, lst), set()
                ):
                    return "confirmed", [("confirm", who, lst, SENDER_OF[lst])]
                return "invalid_token", []
            case RecordConsent(who, lst):
                if self.suppressed(who, lst):  # OO-6
                    return "suppressed", []
                return "recorded", [("grant", who, lst, SENDER_OF[lst])]
            case OptOut(who, lst, sender_wide) | Unsubscribe(who, lst, sender_wide):
                if isinstance(step, Unsubscribe) and who not in self.subscribers:
                    return "skipped", []  # no mail was ever addressed to them: no link exists
                key = (who, *self._scope(lst, sender_wide))
                # OO-3: a repeat changes nothing; but a suppression the person set aside for
                # some list is armed again by a new refusal (OO-6).
                if self.in_force_everywhere(key) and not self._to_unsubscribe(
                    who, lst, sender_wide
                ):
                    return "unchanged", []
                return "changed", [("withdraw", who, None if sender_wide else lst, SENDER_OF[lst])]
            case HardBounce(who):
                return ("done" if who in self.subscribers else "skipped"), []
            case Erase(who):
                return ("erased" if who in self.subscribers else "skipped"), []
        raise AssertionError(step)

    def apply(self, step: Step, new_event_ids: list[int]) -> None:
        """Move the model on, given the ids of the events the step appended."""
        self.now += 1
        match step:
            case Subscribe(who, lst) if new_event_ids:
                needs = self.double_opt_in[lst] or self.suppressed(who, lst)
                if needs:
                    self.mailed_at.setdefault(who, []).append(self.now)
                self._grant(who, lst, new_event_ids[0], needs_confirmation=needs)
                self.subscriptions[(who, lst)].status = (
                    SubscriptionStatus.PENDING if needs else SubscriptionStatus.ACTIVE
                )
                if needs:
                    self.requests.add(new_event_ids[0])
                    self.open_requests.setdefault((who, lst), set()).add(new_event_ids[0])
                else:
                    self.open_requests.pop((who, lst), None)
            case Confirm(who, lst) if new_event_ids:
                sub = self.subscriptions[(who, lst)]
                sub.status = SubscriptionStatus.ACTIVE
                # The subscription rests on the request whose link was used.
                grant_id = self.confirm_target(step)
                assert grant_id is not None
                sub.grant_id = grant_id
                sub.confirm_id = new_event_ids[0]
                self.open_requests.pop((who, lst), None)
                # OO-6: the person's own confirmed opt-in reaches this list and no other.
                self.confirmed_at[(who, lst)] = self.now
            case RecordConsent(who, lst) if new_event_ids:
                self._grant(who, lst, new_event_ids[0], needs_confirmation=False)
                self.subscriptions[(who, lst)].status = SubscriptionStatus.ACTIVE
                self.open_requests.pop((who, lst), None)
            case OptOut(who, lst, sender_wide) | Unsubscribe(who, lst, sender_wide):
                if new_event_ids:
                    for sub in self._to_unsubscribe(who, lst, sender_wide):
                        sub.status = SubscriptionStatus.UNSUBSCRIBED
                    for w, other in list(self.open_requests):
                        if w == who and (
                            other == lst or (sender_wide and SENDER_OF[other] == SENDER_OF[lst])
                        ):
                            del self.open_requests[(w, other)]
                    self._refuse((who, *self._scope(lst, sender_wide)))
            case HardBounce(who) if who in self.subscribers:
                self._refuse((who, "global", GLOBAL))
            case Erase(who) if who in self.subscribers:
                self._refuse((who, "global", GLOBAL))
                self.subscribers.discard(who)
                # The next signup is a new subscriber: the erased one's mails do not count.
                self.mailed_at.pop(who, None)
                for key in [k for k in self.subscriptions if k[0] == who]:
                    del self.subscriptions[key]
                    self.open_requests.pop(key, None)
                for (person, _lst), grant_ids in self.grants.items():
                    if person == who:
                        self.erased_grants.update(grant_ids)

    def _grant(self, who: int, lst: str, event_id: int, *, needs_confirmation: bool) -> None:
        self.subscribers.add(who)
        # The subscription now rests on this grant; a confirmation of an earlier grant is not
        # a confirmation of this one.
        self.subscriptions[(who, lst)] = ModelSubscription(
            SubscriptionStatus.PENDING, event_id, needs_confirmation
        )
        self.grants.setdefault((who, lst), []).append(event_id)

    @staticmethod
    def _scope(lst: str, sender_wide: bool) -> tuple[str, str]:
        return ("sender", SENDER_OF[lst]) if sender_wide else ("list", lst)

    def _to_unsubscribe(self, who: int, lst: str, sender_wide: bool) -> list[ModelSubscription]:
        in_scope = [
            sub
            for (w, other), sub in self.subscriptions.items()
            if w == who and (other == lst or (sender_wide and SENDER_OF[other] == SENDER_OF[lst]))
        ]
        return [sub for sub in in_scope if sub.status is not SubscriptionStatus.UNSUBSCRIBED]


# --- running a step through the service layer ------------------------------------------------


def _list_id(world: World, lst: str) -> int:
    return {"doi": world.doi_list, "soi": world.soi_list, "other": world.other_list}[lst].id


def _sender_id(world: World, lst: str) -> int:
    return world.shop_id if SENDER_OF[lst] == "shop" else world.other_id


async def _subscriber_id(session: AsyncSession, who: int) -> int | None:
    subscriber = await repo.subscriber_by_email(session, ADDRESSES[who])
    return subscriber.id if subscriber else None


async def execute(
    runtime: Runtime, world: World, model: Model, step: Step, operator: Principal
) -> str:
    """Apply one step in its own unit of work, as one request would; return what it answered."""
    email = ADDRESSES[step.who]
    hasher = world.hasher
    try:
        async with runtime.sessionmaker() as session, session.begin():
            match step:
                case Subscribe(_, lst):
                    signup = await service.subscribe(
                        session,
                        hasher,
                        mailing_list=world.lists[LISTS.index(lst)],
                        email=email,
                        name=None,
                        consent_text=CONSENT_TEXT,
                        method=ConsentMethod.WEB_FORM,
                        origin=WEB,
                    )
                    return signup.result.value
                case Confirm():
                    grant_id = model.confirm_target(step)
                    if grant_id is None:
                        return "skipped"
                    confirmed = await service.confirm(
                        session, hasher, grant_event_id=grant_id, origin=WEB
                    )
                    return confirmed.result.value
                case RecordConsent(_, lst, basis):
                    await service.record_consent(
                        session,
                        hasher,
                        list_id=_list_id(world, lst),
                        email=email,
                        basis=basis,
                        method=ConsentMethod.ADMIN,
                        obtained_at=world.doi_list.created_at,
                        evidence={"note": "recorded by the property test"},
                        consent_text=None,
                        origin=RequestOrigin(),
                        recorded_by="api_key:1",
                    )
                    return "recorded"
                case OptOut(_, lst, sender_wide):
                    outcome = await service.record_optout(
                        session,
                        hasher,
                        email=email,
                        sender_id=_sender_id(world, lst),
                        list_id=None if sender_wide else _list_id(world, lst),
                        method=ConsentMethod.PHONE,
                        reason=SuppressionReason.OPTOUT_REQUEST,
                        recorded_by="api_key:1",
                        channel="phone",
                    )
                    return "changed" if outcome.changed else "unchanged"
                case Unsubscribe(_, lst, sender_wide):
                    subscriber_id = await _subscriber_id(session, step.who)
                    if subscriber_id is None:
                        return "skipped"
                    token = runtime.signer.unsubscribe_token(
                        subscriber_id, _list_id(world, lst), hasher(email)
                    )
                    _target, outcome = await service.unsubscribe_by_token(
                        session,
                        hasher,
                        claim=runtime.signer.read_unsubscribe(token),
                        scope=UnsubscribeScope.SENDER if sender_wide else UnsubscribeScope.LIST,
                        method=ConsentMethod.ONE_CLICK,
                        origin=WEB,
                    )
                    return "changed" if outcome.changed else "unchanged"
                case HardBounce():
                    subscriber_id = await _subscriber_id(session, step.who)
                    if subscriber_id is None:
                        return "skipped"  # never mailed: nothing can have bounced
                    await record_hard_bounce(
                        session, subscriber_id=subscriber_id, address_hash=hasher(email)
                    )
                    return "done"
                case Erase():
                    subscriber_id = await _subscriber_id(session, step.who)
                    if subscriber_id is None:
                        return "skipped"
                    await erase_subscriber(session, hasher, operator, subscriber_id)
                    return "erased"
    except AddressSuppressed:
        return "suppressed"
    except InvalidToken:
        return "invalid_token"
    raise AssertionError(step)


# --- comparing the database with the model ---------------------------------------------------


class Harness:
    """One history on a freshly emptied database: applies steps, compares after each one."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.steps: list[Step] = []
        self.ledger: list[dict[str, Any]] = []

    async def start(self, *, other_double_opt_in: bool) -> None:
        await reset_tables(self.runtime)
        self.world = await build_world(self.runtime, other_double_opt_in=other_double_opt_in)
        async with self.runtime.sessionmaker() as session, session.begin():
            key = ApiKey(name="operator", scope=ApiKeyScope.ADMIN, key_hash="0" * 64, prefix="op")
            session.add(key)
            await session.flush()
            self.operator = Principal(api_key_id=key.id, scope=ApiKeyScope.ADMIN)
        self.model = Model(double_opt_in={"doi": True, "soi": False, "other": other_double_opt_in})

    async def next_day(self) -> None:
        """A day passes for OO-7's one confirmation mail a day: every mail queued so far now
        dates from two days ago (nothing else in these histories reads the time)."""
        async with self.runtime.sessionmaker() as session, session.begin():
            for row in (await session.scalars(select(OutboxMessage))).all():
                row.created_at = row.created_at - timedelta(days=2)
        self.model.mailed_at.clear()

    async def step(self, step: Step) -> None:
        self.steps.append(step)
        where = f"after step {len(self.steps)} of {self.steps!r}"
        expected_answer, expected_events = self.model.predict(step)
        answer = await execute(self.runtime, self.world, self.model, step, self.operator)
        assert answer == expected_answer, where

        async with self.runtime.sessionmaker() as session, session.begin():
            before = self.ledger
            rows = await session.execute(text("SELECT * FROM consent_events ORDER BY id"))
            self.ledger = [dict(row) for row in rows.mappings()]
            # CR-1: events are appended, never changed; an erasure only unlinks them from the
            # profile it deletes and sets their holds (DS-3, CR-2).
            erasure = {"subscriber_id", "retain_until"} if isinstance(step, Erase) else set()
            assert [_without(e, erasure) for e in self.ledger[: len(before)]] == [
                _without(e, erasure) for e in before
            ], f"CR-1: an event changed {where}"
            new_events = self.ledger[len(before) :]
            assert [_shape(self.world, e) for e in new_events] == expected_events, where
            self.model.apply(step, [e["id"] for e in new_events])
            await _compare(session, self.world, self.model, where)


def _without(event: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    return {column: value for column, value in event.items() if column not in columns}


def _shape(world: World, event: dict[str, Any]) -> EventShape:
    lists = {_list_id(world, key): key for key in LISTS}
    list_key = lists[event["list_id"]] if event["list_id"] is not None else None
    sender = "shop" if event["sender_id"] == world.shop_id else "other"
    return (event["kind"], ADDRESSES.index(event["email"]), list_key, sender)


async def _compare(session: AsyncSession, world: World, model: Model, where: str) -> None:
    rows = await session.execute(select(Subscriber.email, Subscriber.id))
    subscriber_ids = {email: subscriber_id for email, subscriber_id in rows}
    assert set(subscriber_ids) == {ADDRESSES[who] for who in model.subscribers}, where

    for who, email in enumerate(ADDRESSES):
        # The check every door uses before it records consent (signup, admin API, import):
        # for every list, also those the person never subscribed to.
        for lst in LISTS:
            assert await repo.is_suppressed(
                session, world.hasher(email), _sender_id(world, lst), _list_id(world, lst)
            ) == model.suppressed(who, lst), f"OO-6 is_suppressed {email} {lst} {where}"
        status = await admin_service.suppression_status(session, world.hasher, email)
        assert status.suppressed == model.suppressed_somewhere(who), (
            f"GET /suppressions {email} {where}"
        )

    statuses = {
        (row.subscriber_id, row.list_id): row.status
        for row in await session.execute(
            select(Subscription.subscriber_id, Subscription.list_id, Subscription.status)
        )
    }
    for who in sorted(model.subscribers):
        email = ADDRESSES[who]
        for lst in LISTS:
            subscriber_id, list_id = subscriber_ids[email], _list_id(world, lst)
            sub = model.subscriptions.get((who, lst))
            assert statuses.get((subscriber_id, list_id)) == (sub.status if sub else None), (
                f"status {email} {lst} {where}"
            )
            decision = await repo.check_gate(session, subscriber_id, list_id)
            assert (decision.verdict, decision.consent_event_id) == model.gate(who, lst), (
                f"SG-1 gate {email} {lst} {where}"
            )

    # What the database holds, checked after what it decides: a rule broken shows first as
    # the wrong verdict.
    refs = {("sender", "shop"): world.shop_id, ("sender", "other"): world.other_id}
    refs |= {("list", key): _list_id(world, key) for key in LISTS} | {("global", GLOBAL): 0}
    # Suppressions are never deleted: each refusal ever made is there (OO-6, DS-3).
    expected_suppressions = {
        (world.hasher(ADDRESSES[who]), scope, refs[(scope, ref)])
        for who, scope, ref in model.refused_at
    }
    suppressions = await session.execute(
        select(Suppression.address_hash, Suppression.scope, Suppression.scope_ref)
    )
    assert {tuple(row) for row in suppressions} == expected_suppressions, f"suppressions {where}"
    # The lifts are exactly the (suppression, list) pairs the person came back to since the
    # suppression's latest refusal.
    expected_lifts = {
        (world.hasher(ADDRESSES[key[0]]), key[1], refs[(key[1], key[2])], _list_id(world, lst))
        for key in model.refused_at
        for lst in LISTS
        if _covers(key, lst) and not model.blocks(key, lst)
    }
    lifts = await session.execute(
        select(
            Suppression.address_hash,
            Suppression.scope,
            Suppression.scope_ref,
            SuppressionLift.list_id,
        ).join(Suppression, Suppression.id == SuppressionLift.suppression_id)
    )
    assert {tuple(row) for row in lifts} == expected_lifts, f"OO-6 lifts {where}"


# --- the tests -------------------------------------------------------------------------------


def consent_gate_machine(runtime: Runtime, runner: asyncio.Runner) -> type[RuleBasedStateMachine]:
    """A Hypothesis state machine whose rules are the doors of the consent domain.

    Rules are synchronous; each runs its step on the test's own event loop (``runner``), the one
    the runtime's connections belong to.
    """

    class ConsentGate(RuleBasedStateMachine):
        # The rules act on one (address, list) at a time, the focus, which a rule of its own
        # moves: drawn afresh for every step, a signup, its confirmation and a later consent or
        # opt-out of the same person on the same list would rarely meet in a short history.

        @initialize(other_double_opt_in=st.booleans(), who=_who, lst=_lst)
        def start(self, other_double_opt_in: bool, who: int, lst: str) -> None:
            self.who, self.lst = who, lst
            self.harness = Harness(runtime)
            runner.run(self.harness.start(other_double_opt_in=other_double_opt_in))

        @rule(who=_who, lst=_lst)
        def focus(self, who: int, lst: str) -> None:
            self.who, self.lst = who, lst

        @rule()
        def subscribe(self) -> None:
            runner.run(self.harness.step(Subscribe(self.who, self.lst)))

        @rule()
        def subscribe_and_confirm(self) -> None:
            """The usual journey: sign up, then use the link in the confirmation mail."""
            runner.run(self.harness.step(Subscribe(self.who, self.lst)))
            runner.run(self.harness.step(Confirm(self.who, self.lst, 0)))

        @precondition(lambda self: (self.who, self.lst) in self.harness.model.grants)
        @rule(age=st.sampled_from([0, 0, 0, 1, 2]))
        def confirm(self, age: int) -> None:
            runner.run(self.harness.step(Confirm(self.who, self.lst, age)))

        @rule(basis=st.sampled_from(list(LegalBasis)))
        def record_consent(self, basis: LegalBasis) -> None:
            runner.run(self.harness.step(RecordConsent(self.who, self.lst, basis)))

        @rule(sender_wide=st.booleans())
        def record_optout(self, sender_wide: bool) -> None:
            runner.run(self.harness.step(OptOut(self.who, self.lst, sender_wide)))

        @precondition(lambda self: self.who in self.harness.model.subscribers)
        @rule(sender_wide=st.booleans())
        def unsubscribe_by_token(self, sender_wide: bool) -> None:
            runner.run(self.harness.step(Unsubscribe(self.who, self.lst, sender_wide)))

        @precondition(lambda self: self.who in self.harness.model.subscribers)
        @rule()
        def hard_bounce(self) -> None:
            runner.run(self.harness.step(HardBounce(self.who)))

        @precondition(lambda self: self.who in self.harness.model.subscribers)
        @rule()
        def erase(self) -> None:
            runner.run(self.harness.step(Erase(self.who)))

    return ConsentGate


def test_sg1_gate_mails_exactly_whom_the_rules_allow_over_random_histories(
    settings: Settings, is_postgres: bool
) -> None:
    """SG-1 (with CC-1, CC-3, SG-2, SG-4, OO-5, OO-6, DS-3): after every step of a random history
    the gate's verdict for every address and list, and the consent event a delivery would cite,
    equal the model's, and so do the suppression check of every door and GET /suppressions; every
    step appends exactly the events the model expects; no event ever changes. A confirmation
    that lifted a suppression beyond its own list fails it.

    A plain (synchronous) test that runs its own event loop: Hypothesis drives many examples
    through one function-scoped database, and each example empties the tables first.
    """
    with asyncio.Runner() as runner:
        runtime = Runtime.build(settings)
        try:
            run_state_machine_as_test(
                consent_gate_machine(runtime, runner),
                settings=hypothesis_settings(
                    # PostgreSQL round trips cost more on this 2-core machine: fewer, shorter
                    # histories keep the file under a minute per database.
                    max_examples=40 if is_postgres else 60,
                    stateful_step_count=12 if is_postgres else 20,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            runner.run(runtime.dispose())


async def test_sg1_sender_optout_holds_until_the_persons_own_confirmed_signup(
    runtime: Runtime,
) -> None:
    """SG-1, OO-5, OO-6, CC-3: a known history, run on every test run whatever Hypothesis draws.
    A subscriber of the single opt-in list opts out of the whole sender by phone; an operator's
    consent is then refused; signing up again on the single opt-in list needs confirmation
    while suppressed; only the confirmation makes the address mailable again."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (
        Subscribe(0, "soi"),
        OptOut(0, "doi", sender_wide=True),
        RecordConsent(0, "soi", LegalBasis.WRITTEN_NOTICE),
        Subscribe(0, "soi"),
    ):
        await harness.step(step)
    async with runtime.sessionmaker() as session:
        subscription = (await session.scalars(select(Subscription))).one()
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
    assert subscription.status == SubscriptionStatus.PENDING
    assert gate.verdict is GateVerdict.SUPPRESSED

    await harness.step(Confirm(0, "soi", age=0))
    async with runtime.sessionmaker() as session:
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
    assert gate.mailable
    assert gate.consent_event_id == harness.model.subscriptions[(0, "soi")].confirm_id


async def test_sg1_admin_consent_after_a_confirmed_signup_rests_on_the_new_grant(
    runtime: Runtime,
) -> None:
    """SG-1, CR-1: once an operator records a new consent, the delivery must cite that grant,
    not the confirmation of an earlier one (found by the property test above)."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=0),
        RecordConsent(0, "doi", LegalBasis.BUSINESS_RELATIONSHIP),
    ):
        await harness.step(step)
    async with runtime.sessionmaker() as session:
        subscription = (await session.scalars(select(Subscription))).one()
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
        cited = await session.get(ConsentEvent, gate.consent_event_id)
    assert gate.mailable
    assert cited is not None
    assert (cited.kind, cited.basis) == (ConsentEventKind.GRANT, LegalBasis.BUSINESS_RELATIONSHIP)


async def test_sg1_cc3_active_but_unconfirmed_double_opt_in_is_not_mailable(
    runtime: Runtime,
) -> None:
    """SG-1, CC-3: the gate reads the confirmation itself, not only the status. A double opt-in
    subscription whose status says active without a confirmation (as a faulty import or a hand
    edit of the database could leave it) is not mailable; the services never produce one, so
    the property above cannot reach this state."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    await harness.step(Subscribe(0, "doi"))
    async with runtime.sessionmaker() as session, session.begin():
        subscription = (await session.scalars(select(Subscription))).one()
        subscription.status = SubscriptionStatus.ACTIVE
    async with runtime.sessionmaker() as session:
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
    assert gate.verdict is GateVerdict.NO_CONSENT
    assert gate.consent_event_id is None


async def test_cc3_the_older_of_two_outstanding_requests_confirms_and_is_cited(
    runtime: Runtime,
) -> None:
    """CC-3, CR-1 (issue #10.3): a person who signed up twice confirms with the first mail's
    link; the subscription rests on that request. A request an opt-out ended never confirms,
    even once a new signup makes the subscription pending again."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (Subscribe(0, "doi"), Subscribe(0, "doi"), Confirm(0, "doi", age=1)):
        await harness.step(step)
    first_request = harness.model.grants[(0, "doi")][0]
    async with runtime.sessionmaker() as session:
        subscription = (await session.scalars(select(Subscription))).one()
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
        cited = await session.get(ConsentEvent, gate.consent_event_id)
    assert gate.mailable
    assert subscription.grant_event_id == first_request
    assert cited is not None
    assert cited.evidence["grant_event_id"] == first_request

    for step in (
        OptOut(0, "doi", sender_wide=False),
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=2),  # the first request, from before the opt-out: over
        Confirm(0, "doi", age=0),  # the new one
    ):
        await harness.step(step)
    newest_request = harness.model.grants[(0, "doi")][-1]
    async with runtime.sessionmaker() as session:
        subscription = (await session.scalars(select(Subscription))).one()
        gate = await repo.check_gate(session, subscription.subscriber_id, subscription.list_id)
    assert gate.mailable
    assert subscription.grant_event_id == newest_request


async def _gate_of(runtime: Runtime, world: World, who: int, lst: str) -> GateVerdict:
    async with runtime.sessionmaker() as session:
        subscriber_id = await _subscriber_id(session, who)
        assert subscriber_id is not None
        return (await repo.check_gate(session, subscriber_id, _list_id(world, lst))).verdict


async def test_oo6_confirming_one_list_does_not_reopen_the_senders_other_lists(
    runtime: Runtime,
) -> None:
    """OO-6, OO-5, CC-3: a known history (the attack of issue #10). The person opts out of
    everything from the shop, later signs up again on its double opt-in list and confirms. A
    stranger then signs the address up to the shop's single opt-in list: the signup must wait
    for the person's own confirmation, and the address stays suppressed there."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (
        Subscribe(0, "soi"),
        Unsubscribe(0, "soi", sender_wide=True),
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=0),
    ):
        await harness.step(step)
    assert await _gate_of(runtime, harness.world, 0, "doi") is GateVerdict.MAILABLE
    await harness.next_day()  # past OO-7's one mail a day: the scope rule alone decides
    await harness.step(Subscribe(0, "soi"))  # the stranger: the model expects "pending"
    assert harness.model.subscriptions[(0, "soi")].status is SubscriptionStatus.PENDING
    assert await _gate_of(runtime, harness.world, 0, "soi") is GateVerdict.SUPPRESSED
    # ... and no operator can record consent there either.
    await harness.step(RecordConsent(0, "soi", LegalBasis.WRITTEN_NOTICE))  # "suppressed"


async def test_oo6_ds3_confirming_a_list_does_not_undo_an_erasure_for_other_senders(
    runtime: Runtime,
) -> None:
    """OO-6, DS-3: a known history (the second attack of issue #10). The person is erased;
    later they sign up again on the shop's list and confirm; a stranger then signs the address
    up to the other sender's single opt-in list: it waits for the person's confirmation, and the
    erasure's suppression still blocks the address there and on the shop's other list."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=0),
        Erase(0),
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=0),
        "next day",  # past OO-7's one mail a day: the scope rule alone decides
        Subscribe(0, "other"),  # the stranger: the model expects "pending"
        "next day",
        Subscribe(0, "soi"),
    ):
        await (harness.next_day() if step == "next day" else harness.step(step))
    assert await _gate_of(runtime, harness.world, 0, "doi") is GateVerdict.MAILABLE
    for lst in ("other", "soi"):
        assert harness.model.subscriptions[(0, lst)].status is SubscriptionStatus.PENDING
        assert await _gate_of(runtime, harness.world, 0, lst) is GateVerdict.SUPPRESSED


async def test_oo6_a_new_refusal_after_coming_back_suppresses_again(runtime: Runtime) -> None:
    """OO-6, SG-2, SG-4: after the person came back to a list, a new opt-out of the same scope
    (by phone this time), and later a hard bounce, each suppress that list again; each time only
    a new confirmation brings it back."""
    harness = Harness(runtime)
    await harness.start(other_double_opt_in=False)
    for step in (
        Subscribe(0, "soi"),
        Unsubscribe(0, "soi", sender_wide=True),
        Subscribe(0, "doi"),
        Confirm(0, "doi", age=0),
        Unsubscribe(0, "soi", sender_wide=True),  # the same scope again: not "unchanged"
    ):
        await harness.step(step)
    assert await _gate_of(runtime, harness.world, 0, "doi") is GateVerdict.SUPPRESSED
    await harness.next_day()  # past OO-7's one mail a day
    for step in (Subscribe(0, "doi"), Confirm(0, "doi", age=0)):
        await harness.step(step)
    assert await _gate_of(runtime, harness.world, 0, "doi") is GateVerdict.MAILABLE
    await harness.step(HardBounce(0))
    await harness.next_day()
    for step in (Subscribe(0, "doi"), Confirm(0, "doi", age=0), HardBounce(0)):
        await harness.step(step)
    assert await _gate_of(runtime, harness.world, 0, "doi") is GateVerdict.SUPPRESSED
