"""CR-3: a campaign's compliance report shows, for every recipient, what the mail relied on
(the legal basis, the consent event with its evidence and wording) and any opt-out."""

from __future__ import annotations

import csv
import io
import json
import re
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditLog, Campaign, ConsentEvent
from app.sending.deliveries import materialize_batch
from app.sending.runner import DeliveryRunner
from tests.conftest import BASE_URL
from tests.factories import make_world
from tests.ledger.helpers import grant

WORDING = "承諾ニュース（広告を含みます）を株式会社承諾から受け取ることに同意します。"
FORMULA_UA = '=HYPERLINK("https://evil.example/","click")'
CONFIRM_URL = re.compile(r"https?://[^\s\"<>]+/confirm/[A-Za-z0-9_.\-]+")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def web_signup_and_confirm(client, outbox, smtp_server, email: str) -> None:
    """The person's own double opt-in through the public door (CC-3)."""
    signup = await client.post(
        "/subscribe/news",
        json={
            "email": email,
            "consent": True,
            "consent_text": WORDING,
            "source_url": "https://shop.example.jp/newsletter",
        },
        headers={"User-Agent": "Mozilla/5.0 Test"},
    )
    assert signup.status_code == 202, signup.text
    await outbox()
    [mail] = smtp_server.messages_to(email)
    url = CONFIRM_URL.search(text_of(mail.message))
    assert url is not None
    confirmed = await client.post(url.group(0).removeprefix(BASE_URL))
    assert confirmed.status_code == 200


def unsubscribe_path(smtp_server, email: str) -> str:
    [mail] = smtp_server.messages_to(email)
    header = str(mail.message["List-Unsubscribe"])
    url = re.search(r"<(https?://[^>]+)>", header)
    assert url is not None
    return url.group(1).removeprefix(BASE_URL)


@pytest.fixture
async def sent_campaign(app, admin, client, runtime, outbox, smtp_server) -> dict[str, Any]:
    """One campaign, four recipients: hanako signed up on the web and confirmed; taro was
    recorded from a business card (with a user agent that reads as a spreadsheet formula);
    saburo unsubscribed with one click after the mail arrived; jiro phoned to opt out after
    the campaign started, before his mail went."""
    world = await make_world(runtime)
    await web_signup_and_confirm(client, outbox, smtp_server, "hanako@example.jp")
    taro_grant = await grant(runtime, world.list_id, "taro@example.jp", user_agent=FORMULA_UA)
    saburo_grant = await grant(runtime, world.list_id, "saburo@example.jp")
    await grant(runtime, world.list_id, "jiro@example.jp")

    created = await admin.post(
        "/campaigns",
        json={"name": "12月号", "list_id": world.list_id, "template_id": world.template_id},
    )
    campaign_id = created.json()["id"]
    assert (await admin.post(f"/campaigns/{campaign_id}/send")).status_code == 202
    async with runtime.sessionmaker() as session, session.begin():
        # The deliveries exist (as a worker's first step makes them) before jiro phones.
        campaign = await session.get(Campaign, campaign_id)
        assert await materialize_batch(session, campaign, batch_size=100)
    phoned = await admin.post(
        "/optouts",
        json={"email": "jiro@example.jp", "list_id": world.list_id, "channel": "phone"},
    )
    assert phoned.status_code == 201, phoned.text
    report = await DeliveryRunner(runtime, app.state.transport).drain(campaign_id)
    assert report.finished

    one_click = await client.post(
        unsubscribe_path(smtp_server, "saburo@example.jp"),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert one_click.status_code == 200
    return {
        "id": campaign_id,
        "world": world,
        "taro_grant": taro_grant,
        "saburo_grant": saburo_grant,
        "jiro_optout": phoned.json()["effects"][0]["event_ids"][0],
    }


async def events_by_email(runtime, email: str) -> list[ConsentEvent]:
    async with runtime.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(ConsentEvent)
                    .where(ConsentEvent.email == email)
                    .order_by(ConsentEvent.id)
                )
            ).all()
        )


async def test_cr3_json_report_shows_each_recipients_basis_evidence_wording_and_optout(
    admin, runtime, sent_campaign
):
    response = await admin.get(
        f"/campaigns/{sent_campaign['id']}/compliance-report", params={"format": "json"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    rows = {row["email"]: row for row in response.json()}
    assert sorted(rows) == [
        "hanako@example.jp",
        "jiro@example.jp",
        "saburo@example.jp",
        "taro@example.jp",
    ]

    hanako = rows["hanako@example.jp"]
    confirm = (await events_by_email(runtime, "hanako@example.jp"))[1]
    assert hanako["status"] == "sent"
    assert hanako["sent_at"] is not None
    assert hanako["basis"] == "opt_in"
    assert hanako["consent_event_id"] == confirm.id
    assert hanako["consent_kind"] == "confirm"
    assert hanako["consent_method"] == "api"
    assert hanako["consent_text"] == WORDING
    assert hanako["consent_source_url"] == "https://shop.example.jp/newsletter"
    assert hanako["double_opt_in_requested_at"] is not None
    assert hanako["confirmed_at"] is not None
    assert hanako["purpose"] == "新製品とイベントのお知らせ"
    assert hanako["optout_event_id"] is None

    taro = rows["taro@example.jp"]
    assert taro["status"] == "sent"
    assert taro["basis"] == "written_notice"
    assert taro["consent_event_id"] == sent_campaign["taro_grant"]
    assert taro["consent_method"] == "business_card"
    assert taro["consent_obtained_at"] == "2026-10-01T09:30:00+00:00"
    assert taro["consent_evidence"]["document_ref"] == "名刺 BC-0042"
    assert taro["consent_user_agent"] == FORMULA_UA  # JSON is data, not a spreadsheet
    assert taro["optout_event_id"] is None

    saburo = rows["saburo@example.jp"]
    assert saburo["status"] == "sent"
    assert saburo["consent_event_id"] == sent_campaign["saburo_grant"]
    assert saburo["optout_channel"] == "one_click"
    assert saburo["optout_scope"] == "sender"  # OO-5: every list of the sender by default
    assert saburo["optout_at"] > saburo["sent_at"]

    jiro = rows["jiro@example.jp"]
    assert jiro["status"] == "cancelled"  # SG-2: the opt-out cancelled the queued mail
    assert jiro["sent_at"] is None
    assert jiro["consent_event_id"] is None  # nothing was sent, so nothing was relied on
    assert jiro["optout_event_id"] == sent_campaign["jiro_optout"]
    assert jiro["optout_channel"] == "phone"
    assert jiro["optout_scope"] == "list"


async def test_cr3_csv_report_opens_in_a_spreadsheet_as_utf8_without_running_formulas(
    admin, sent_campaign
):
    response = await admin.get(f"/campaigns/{sent_campaign['id']}/compliance-report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    by_email = {row["email"]: row for row in rows}
    assert len(rows) == 4
    taro = by_email["taro@example.jp"]
    assert taro["consent_user_agent"] == "'" + FORMULA_UA
    assert json.loads(taro["consent_evidence"])["received_by"] == "営業部 田中"
    assert by_email["hanako@example.jp"]["consent_text"] == WORDING
    assert by_email["jiro@example.jp"]["optout_channel"] == "phone"
    assert by_email["jiro@example.jp"]["consent_event_id"] == ""


async def test_cr3_ds6_the_report_is_audited_with_the_key_that_downloaded_it(
    admin, reader, runtime, sent_campaign
):
    """A read key may download the report (it is a read), and the download is audited."""
    response = await reader.get(
        f"/campaigns/{sent_campaign['id']}/compliance-report", params={"format": "json"}
    )
    assert response.status_code == 200
    async with runtime.sessionmaker() as session:
        entry = (
            await session.scalars(
                select(AuditLog).where(AuditLog.action == "campaign.compliance_report")
            )
        ).one()
    assert entry.target_type == "campaign"
    assert entry.target_id == str(sent_campaign["id"])
    assert entry.details == {"format": "json"}
    assert entry.api_key_id is not None


async def test_cr3_report_of_an_unknown_campaign_is_404_and_a_bad_format_is_422(admin, runtime):
    missing = await admin.get("/campaigns/4242/compliance-report")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"
    bad = await admin.get("/campaigns/4242/compliance-report", params={"format": "xlsx"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "ValidationError"
    huge = await admin.get("/campaigns/99999999999/compliance-report")
    assert huge.status_code == 422
    async with runtime.sessionmaker() as session:
        audited = (await session.scalars(select(AuditLog))).all()
    assert audited == []  # nothing was exported, nothing audited


async def test_cr3_report_needs_a_key(client):
    response = await client.get("/api/v1/campaigns/1/compliance-report")
    assert response.status_code == 401
