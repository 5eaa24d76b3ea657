"""A signup answers alike, in content, in work and in time, whatever is known about the address
(CC-3: a signup form must not tell anyone which addresses are on a list). The time itself is
measured by bench/signup_timing.py; these tests prove the work and the floor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import MailingList, OutboxMessage
from app.models.enums import OutboxStatus
from app.public.answer_time import SignupAnswerFloor
from app.runtime import Runtime
from tests.factories import subscriber_by_email, subscription_of
from tests.public.conftest import json_signup


async def _outbox(runtime: Runtime) -> list[tuple[str, bool]]:
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [(row.status, row.consent_event_id is not None) for row in rows]


@pytest.mark.parametrize("slug", ["news", "weekly"])
async def test_cc3_known_and_unknown_addresses_cost_the_same_write(
    client: httpx.AsyncClient,
    runtime: Runtime,
    news_row: MailingList,
    weekly: MailingList,
    slug: str,
) -> None:
    """Every accepted signup writes one outbox row in its unit of work: a confirmation to send,
    or one dropped at once when there is nothing to send (already active). An active address
    used to cost no write at all, and answered measurably faster than a new one."""
    mailing_list = news_row if slug == "news" else weekly
    assert (await json_signup(client, slug, "active@example.jp")).status_code in (200, 202)
    subscription = await subscription_of(runtime, "active@example.jp", mailing_list.id)
    assert subscription is not None
    if mailing_list.double_opt_in:
        token = runtime.signer.confirm_token(subscription.grant_event_id or 0)
        assert (await client.post(f"/confirm/{token}")).status_code == 200
    before = await _outbox(runtime)

    known = await json_signup(client, slug, "active@example.jp")
    after_known = await _outbox(runtime)
    unknown = await json_signup(client, slug, "stranger@example.jp")
    after_unknown = await _outbox(runtime)

    assert known.status_code == unknown.status_code
    assert known.text == unknown.text
    assert len(after_known) == len(before) + 1
    assert after_known[-1] == (OutboxStatus.DROPPED, False)  # nothing is mailed to the known
    if mailing_list.double_opt_in:
        assert len(after_unknown) == len(after_known) + 1
        assert after_unknown[-1] == (OutboxStatus.PENDING, True)  # the stranger's confirmation
    else:
        # A single opt-in signup writes its grant event and subscription instead.
        assert len(after_unknown) == len(after_known)
        assert await subscriber_by_email(runtime, "stranger@example.jp") is not None
    # The known address's dropped row wakes no outbox sender and says why.
    async with runtime.sessionmaker() as session:
        reasons = (
            await session.scalars(
                select(OutboxMessage.last_error).where(OutboxMessage.consent_event_id.is_(None))
            )
        ).all()
    assert reasons == ["already subscribed: nothing to confirm"]


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def _answer_time(floor: float, path: str, work: float, method: str = "POST") -> float:
    """When the response starts, on a fake clock, for a request whose handling takes ``work``."""
    clock = _FakeClock()
    started_at: list[float] = []

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        clock.now += work  # the database work of this path
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            started_at.append(clock.now)

    middleware = SignupAnswerFloor(handler, floor, clock=clock, sleep=clock.sleep)
    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await middleware(scope, None, send)  # type: ignore[arg-type]
    return started_at[0] - 100.0


async def test_cc3_every_signup_answer_is_held_to_the_same_floor() -> None:
    """Known (little work) and unknown (more work) answer at the same instant after arrival;
    other requests are not held, and a path slower than the floor is not held further."""
    known = await _answer_time(0.25, "/subscribe/news", work=0.003)
    unknown = await _answer_time(0.25, "/subscribe/news", work=0.009)
    assert known == pytest.approx(0.25)
    assert unknown == pytest.approx(0.25)
    assert await _answer_time(0.25, "/unsubscribe/x", work=0.003) == pytest.approx(0.003)
    get = await _answer_time(0.25, "/subscribe/news", work=0.003, method="GET")
    assert get == pytest.approx(0.003)
    assert await _answer_time(0.25, "/subscribe/news", work=0.4) == pytest.approx(0.4)
    assert await _answer_time(0, "/subscribe/news", work=0.003) == pytest.approx(0.003)


def test_cc3_the_floor_is_the_setting_and_on_by_default(app: Any) -> None:
    from app.config import Settings

    assert Settings.model_fields["signup_answer_floor"].default > 0
    [floor] = [m for m in app.user_middleware if m.cls is SignupAnswerFloor]
    assert floor.kwargs["floor"] == app.state.settings.signup_answer_floor
