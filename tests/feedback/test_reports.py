"""SG-4: what comes back is read into the right verdict, whatever server wrote it, and nothing
it contains can make the reader fail."""

from __future__ import annotations

import pytest

from app.feedback.reports import Verdict, read_report
from tests.feedback import corpus

VERP = "bounce+d1-aaaaaaaaaaaaaaaa@bounces.shodaku.example"


@pytest.mark.parametrize(
    ("message", "verdict", "status"),
    [
        (corpus.dsn(VERP), Verdict.HARD_BOUNCE, "5.1.1"),
        (
            corpus.dsn(VERP, status="5.2.2", diagnostic="smtp; 552 5.2.2 Mailbox full"),
            Verdict.SOFT_BOUNCE,
            "5.2.2",
        ),
        (
            corpus.dsn(VERP, status="5.7.1", diagnostic="smtp; 550 5.7.1 Message rejected as spam"),
            Verdict.SOFT_BOUNCE,
            "5.7.1",
        ),
        (corpus.exim_dsn(VERP), Verdict.SOFT_BOUNCE, "4.2.2"),
        (corpus.exim_dsn(VERP, status="5.1.2"), Verdict.HARD_BOUNCE, "5.1.2"),
        (corpus.microsoft_dsn(VERP), Verdict.HARD_BOUNCE, "5.1.10"),
        (corpus.delayed_dsn(VERP), Verdict.DELIVERED, "4.4.1"),
        (corpus.qmail_bounce(VERP), Verdict.HARD_BOUNCE, "5.1.1"),
        (corpus.qmail_bounce(VERP, reply="452 mailbox over quota"), Verdict.SOFT_BOUNCE, None),
        (corpus.carrier_bounce(VERP), Verdict.HARD_BOUNCE, "5.1.1"),
        (corpus.vacation(VERP), Verdict.AUTO_REPLY, None),
        (corpus.refusal(VERP), Verdict.UNKNOWN, None),
    ],
    ids=[
        "postfix-unknown-user",
        "postfix-mailbox-full",
        "postfix-spam-block",
        "exim-full",
        "exim-bad-domain",
        "microsoft-365",
        "gmail-delayed",
        "qmail-text",
        "qmail-quota",
        "docomo-text",
        "vacation",
        "a-person-writing",
    ],
)
def test_sg4_each_format_reads_as_its_verdict(message: bytes, verdict: Verdict, status: str | None):
    report = read_report(message)
    assert report.verdict is verdict
    assert report.status == status


def test_sg4_a_dsn_names_its_reporting_mta_and_its_message_id():
    report = read_report(corpus.dsn(VERP, mta="mx9.example.jp", message_id="<q-77@mx9>"))
    assert report.reporter == "dns; mx9.example.jp"
    assert report.message_id == "<q-77@mx9>"


def test_oo1_a_feedback_report_is_a_complaint_naming_the_original_delivery():
    token = "d2s-bbbbbbbbbbbbbbbb"
    report = read_report(
        corpus.arf("fbl@shodaku.example", original_return_path=f"bounce+{token}@b.example")
    )
    assert report.verdict is Verdict.COMPLAINT
    assert report.reporter == "SomeGenerator/1.0"
    assert report.original_tokens == (token,)


@pytest.mark.parametrize("message", corpus.MALFORMED, ids=range(len(corpus.MALFORMED)))
def test_malformed_input_gets_a_verdict_never_an_exception(message: bytes):
    assert read_report(message).verdict in set(Verdict)


def test_oo4_feedback_tokens_verify_under_every_key_ignore_case_and_refuse_any_change():
    from app.errors import InvalidToken
    from app.tokens import FeedbackTokens

    old = FeedbackTokens(["older-key-0123456789abcdef"])
    rotated = FeedbackTokens(["newest-key-0123456789abcdef", "older-key-0123456789abcdef"])
    token = old.delivery(123456789)
    # A relay may upper-case the local part; a key rotation must not orphan mail in flight.
    assert rotated.read(token.upper()).ids == (123456789,)
    assert rotated.read(token).kind == "d"
    unsubscribe = rotated.unsubscribe(2**40, 7, "ab" * 32)
    claim = rotated.read(unsubscribe)
    assert (claim.kind, claim.ids, claim.address_hash_prefix) == ("u", (2**40, 7), "ab" * 6)
    assert len("unsubscribe+" + unsubscribe) <= 64
    for forged in (
        token[:-1] + ("a" if token[-1] != "a" else "b"),  # another MAC
        "d" + token[2:],  # another id under the same MAC
        token.replace("d", "o", 1),  # the same id as another kind
        FeedbackTokens(["someone-elses-key-0123456789"]).delivery(123456789),
        "",
        "d-" + "a" * 16,
    ):
        with pytest.raises(InvalidToken):
            rotated.read(forged)


def test_sg4_a_person_replying_with_numbers_is_not_a_bounce():
    """Found in review: a reply mentioning "555-0100" or "release 5.4.1" must suppress nobody."""
    reply = (
        b"From: taro@example.jp\r\nTo: bounce+d1-aaaaaaaaaaaaaaaa@b.example\r\n"
        b"Subject: Re: your newsletter\r\n\r\nCall me at 555-0100. Running release 5.4.1.\r\n"
    )
    assert read_report(reply).verdict is Verdict.UNKNOWN
