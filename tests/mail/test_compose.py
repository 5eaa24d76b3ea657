"""Campaign messages as a recipient's mail client and mailbox provider see them (MH-1..MH-4).

Every message is parsed back with the stdlib parser, as the tests of the fast path promised in
DESIGN.md ("Composition").
"""

from __future__ import annotations

import re

import aiosmtplib
import pytest

from app.mail.compose import TemplateInvalid, UnsafeHeaderValue
from tests.mail.factories import (
    BASE_URL,
    REFUSAL,
    composer,
    list_identity,
    parse,
    parts,
    raw_text,
    recipient,
    sender_identity,
)
from tests.smtp import SmtpServer


def test_mh4_one_from_date_message_id_on_the_senders_domain() -> None:
    data = composer().compose(recipient())
    message = parse(data)
    for name in ("From", "Date", "Message-ID", "To", "Subject", "MIME-Version"):
        assert len(message.get_all(name) or []) == 1, name
    assert message["From"].addresses[0].addr_spec == "news@shodaku.example"
    assert message["From"].addresses[0].display_name == "承諾ニュース"
    assert message["To"].addresses[0].addr_spec == "reader1@example.jp"
    # MH-2: the Message-ID is on the sender's own domain, not this host's name.
    assert re.fullmatch(r"<[0-9a-f]{32}@shodaku\.example>", message["Message-ID"])
    assert message["Date"].datetime is not None
    assert "Received" not in message


def test_mh4_message_ids_are_unique_across_a_thousand_messages() -> None:
    built = composer()
    ids = {parse(built.compose(recipient(n)))["Message-ID"] for n in range(1000)}
    assert len(ids) == 1000


def test_mh4_multipart_alternative_with_text_first_and_html_last() -> None:
    message = parse(composer().compose(recipient()))
    assert message.get_content_type() == "multipart/alternative"
    types = [p.get_content_type() for p in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("base64", "quoted-printable")


def test_mh3_list_unsubscribe_is_one_https_uri_unfolded_even_when_long() -> None:
    url = f"{BASE_URL}/unsubscribe/" + "Ab1_-." * 40  # 270 characters
    assert len(url) > 200
    data = composer().compose(recipient(unsubscribe_url=url))
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    # Written on one line, never folded or turned into encoded words (the policy.SMTP trap).
    assert f"List-Unsubscribe: <{url}>".encode() in lines
    message = parse(data)
    assert message.get_all("List-Unsubscribe") == [f"<{url}>"]
    assert re.findall(r"<(https?://[^>]+)>", message["List-Unsubscribe"]) == [url]
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]


def test_mh3_a_url_that_could_break_the_header_is_refused() -> None:
    built = composer()
    for url in (f"{BASE_URL}/u/x>, <mailto:a@b.c", "javascript:alert(1)", f"{BASE_URL}/a b"):
        with pytest.raises(UnsafeHeaderValue):
            built.compose(recipient(unsubscribe_url=url))


def test_list_id_names_the_list_on_the_senders_domain() -> None:
    message = parse(composer().compose(recipient()))
    assert message["List-Id"] == "承諾ニュース <shodaku-news.shodaku.example>"


def test_reply_to_is_written_when_the_sender_has_one() -> None:
    with_reply = composer(sender=sender_identity(reply_to="desk@shodaku.example"))
    assert parse(with_reply.compose(recipient()))["Reply-To"] == "desk@shodaku.example"
    assert "Reply-To" not in parse(composer().compose(recipient()))


def _assert_footer(body: str, language: str, url: str, *, html: bool) -> None:
    sender_name = "株式会社承諾"
    for item in (
        sender_name,
        "山田花子",
        "〒100-0001",
        "東京都千代田区千代田1-1",
        "support@shodaku.example",
        "03-1234-5678",
        "https://shodaku.example/contact",
        url,
    ):
        assert item in body, item
    assert body.count(REFUSAL[language]) == 1
    # The refusal sentence stands immediately before the URL: nothing visible in between.
    after = body[body.index(REFUSAL[language]) + len(REFUSAL[language]) :]
    if html:
        after = re.sub(r"<[^>]*>", "", after)
    assert after.lstrip().startswith(url)


@pytest.mark.parametrize("language", ["ja", "en"])
def test_mh1_footer_items_in_both_parts_in_the_lists_language(language: str) -> None:
    url = f"{BASE_URL}/unsubscribe/tok.en-{language}"
    built = composer(mailing_list=list_identity(language))
    text, html = parts(parse(built.compose(recipient(unsubscribe_url=url))))
    _assert_footer(text, language, url, html=False)
    _assert_footer(html, language, url, html=True)
    other = "en" if language == "ja" else "ja"
    assert REFUSAL[other] not in text + html


def test_mh1_footer_always_follows_the_content_whatever_the_marker_says() -> None:
    """MH-1: ``{{ footer }}`` no longer places the footer (the template could place it where
    nobody sees it): it renders as nothing, and the footer ends both parts, once."""
    built = composer(
        html="<html><body><p>BEFORE</p>{{ footer }}<p>AFTER</p>{{ footer }}</body></html>",
        text="BEFORE\n{{ footer }}\nAFTER {{ footer }}",
    )
    text, html = parts(parse(built.compose(recipient())))
    for body in (text, html):
        assert body.count(REFUSAL["ja"]) == 1
        assert body.index("BEFORE") < body.index("AFTER") < body.index(REFUSAL["ja"])
        assert "shodakufooter" not in body
    assert text.rstrip().endswith(recipient().unsubscribe_url)


def test_mh1_footer_appended_when_the_template_does_not_place_it() -> None:
    built = composer(html="<html><body><p>本文</p></body></html>", text="本文です")
    text, html = parts(parse(built.compose(recipient())))
    assert text.index("本文です") < text.index(REFUSAL["ja"])
    assert html.index("本文") < html.index(REFUSAL["ja"]) < html.index("</body>")
    bare = composer(html="<p>fragment</p>")
    _text, html = parts(parse(bare.compose(recipient())))
    assert html.index("fragment") < html.index(REFUSAL["ja"])


@pytest.mark.parametrize(
    "html",
    [
        "{% set footer = '' %}<p>本文</p>{{ footer }}",
        "{% set footer %}{% endset %}<p>本文</p>{{ footer }}",
        "{% with footer = 'none' %}<p>本文</p>{{ footer }}{% endwith %}",
        "{% macro f(footer) %}{{ footer }}{% endmacro %}<p>本文</p>{{ f('') }}",
        "<p>本文</p>{{ footer | replace('shodaku', '') }}",
    ],
)
def test_mh1_a_template_cannot_remove_or_empty_the_footer(html: str) -> None:
    text, body = parts(parse(composer(html=html).compose(recipient())))
    for part in (text, body):
        assert part.count(REFUSAL["ja"]) == 1
        assert "株式会社承諾" in part


@pytest.mark.parametrize(
    "html",
    [
        "<p>x</p><!-- {{ footer }} -->",
        '<p title="{{ footer }}">x</p>',
        "<html><head><title>{{ footer }}</title></head><body>x</body></html>",
        "<style>{{ footer }}</style><p>x</p>",
    ],
)
def test_mh1_a_footer_hidden_from_the_reader_is_refused(html: str) -> None:
    with pytest.raises(TemplateInvalid, match="footer"):
        composer(html=html)


def test_mh1_footer_escapes_the_senders_name_in_html() -> None:
    built = composer(sender=sender_identity(name="A&B <Trading>", responsible_person=None))
    text, html = parts(parse(built.compose(recipient())))
    assert "A&amp;B &lt;Trading&gt;" in html
    assert "<Trading>" not in html
    assert "A&B <Trading>" in text


def test_html_escapes_a_recipient_name_but_the_text_part_keeps_it() -> None:
    name = "<script>alert(1)</script>"
    message = parse(composer().compose(recipient(name=name)))
    text, html = parts(message)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;様" in html
    assert "<script>" not in html
    assert f"{name}様" in text
    assert message["To"].addresses[0].display_name == name
    assert message["To"].addresses[0].addr_spec == "reader1@example.jp"


def test_jinjas_own_globals_serve_every_message_not_only_the_first() -> None:
    """range, namespace, cycler and joiner come from Jinja's globals, which the sandbox hands
    to each render from a copy made at the first: the thousandth message gets them too."""
    html = (
        "<html><body><p>{% for i in range(3) %}{{ i }}{% endfor %}</p>"
        "{% set ns = namespace(total=0) %}{% for n in [2, 3] %}{% set ns.total = ns.total + n %}"
        "{% endfor %}<p>total {{ ns.total }}</p>"
        "{% set row = cycler('odd', 'even') %}<p>{{ row.next() }} {{ row.next() }}</p>"
        "{% set comma = joiner(', ') %}<p>{% for x in ['a', 'b'] %}{{ comma() }}{{ x }}"
        "{% endfor %}</p>{{ name }}</body></html>"
    )
    built = composer(html=html)
    for n in range(1, 4):
        text, body = parts(parse(built.compose(recipient(n, name=f"読者{n}"))))
        for part in (text, body):
            assert "012" in part
            assert "total 5" in part
            assert "odd even" in part
            assert "a, b" in part
            assert f"読者{n}" in part


def test_mh4_japanese_subject_and_body_round_trip_exactly() -> None:
    subject = "{{ name }}様、【春の新作】桜色のティーセットと限定スイーツのご案内 〜 4月30日まで 〜"
    built = composer(
        subject=subject,
        html=(
            "<html><body><p>{{ name }}様</p><p>春の新作をご覧ください。①②③ 𠮷野家</p></body></html>"
        ),
        text="{{ name }}様\n春の新作をご覧ください。①②③ 𠮷野家",
    )
    data = built.compose(recipient(name="髙橋 𠮷子"))
    message = parse(data)
    assert message["Subject"] == (
        "髙橋 𠮷子様、【春の新作】桜色のティーセットと限定スイーツのご案内 〜 4月30日まで 〜"
    )
    assert message["To"].addresses[0].display_name == "髙橋 𠮷子"
    text, html = parts(message)
    assert text.startswith("髙橋 𠮷子様\n春の新作をご覧ください。①②③ 𠮷野家\n")
    # On the wire the decoded text breaks lines with CRLF, as text in mail must (MH-4).
    wire = raw_text(message)
    assert wire.startswith("髙橋 𠮷子様\r\n春の新作をご覧ください。①②③ 𠮷野家\r\n")
    assert "\n" not in wire.replace("\r\n", "")
    assert "<p>髙橋 𠮷子様</p><p>春の新作をご覧ください。①②③ 𠮷野家</p>" in html
    # MH-4: non-ASCII headers are encoded; the raw message has no 8-bit byte at all.
    assert data.isascii()


def test_mh4_a_long_ascii_subject_is_folded_and_round_trips() -> None:
    subject = " ".join(f"word{n}" for n in range(60))
    data = composer(subject=subject).compose(recipient())
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-"))
    assert parse(data)["Subject"] == subject


def test_mh4_no_line_over_998_octets_with_a_5000_character_html_line() -> None:
    long_line = "<p>" + "あいうえお" * 1000 + "</p>"
    built = composer(html="<html><body>" + long_line + "{{ name }}</body></html>")
    data = built.compose(recipient(unsubscribe_url=f"{BASE_URL}/unsubscribe/" + "x" * 600))
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, no bare LF or CR
    _text, html = parts(parse(data))
    assert long_line in html


def test_mh4_a_line_break_from_a_recipient_never_reaches_a_header() -> None:
    built = composer()
    with pytest.raises(UnsafeHeaderValue):
        built.compose(recipient(name="Eve\r\nBcc: victim@example.com"))
    with pytest.raises(UnsafeHeaderValue):
        built.compose(recipient(email="eve@example.com\nBcc: victim@example.com"))
    subject_with_attribute = composer(subject="Hi {{ attributes.plan | default('') }}")
    with pytest.raises(UnsafeHeaderValue):
        subject_with_attribute.compose(recipient(attributes={"plan": "x\nBcc: v@example.com"}))


def test_mh4_a_line_break_in_the_sender_is_refused_when_the_campaign_is_built() -> None:
    with pytest.raises(UnsafeHeaderValue):
        composer(sender=sender_identity(from_name="News\r\nBcc: victim@example.com"))
    with pytest.raises(UnsafeHeaderValue):
        composer(mailing_list=list_identity(name="News\nX-Evil: 1"))


def test_text_part_is_derived_from_the_html_when_no_text_template_is_given() -> None:
    built = composer(
        html=(
            "<html><body><h1>{{ name }}様</h1><p>価格は &lt;税込&gt; 1,000円 &amp; 送料無料"
            "（&#123;&#123; 割引 &#125;&#125;）</p>"
            '<ul>{% for item in ["紅茶", "緑茶"] %}<li>{{ item }}</li>{% endfor %}</ul>'
            '<p><a href="https://shop.example/{{ attributes.plan | default("") }}">'
            "ショップへ</a></p>"
            "</body></html>"
        )
    )
    text, _html = parts(parse(built.compose(recipient(name="A&B"))))
    assert "A&B様" in text
    assert "価格は <税込> 1,000円 & 送料無料（{{ 割引 }}）" in text
    assert "紅茶" in text
    assert "緑茶" in text
    assert "https://shop.example/gold" in text
    assert "<h1>" not in text
    assert "<p>" not in text
    assert text.count(REFUSAL["ja"]) == 1


def test_text_part_falls_back_to_converting_each_message_when_derivation_fails() -> None:
    # inscriptis drops <style>, and with it one half of the if-block: the derived text template
    # does not compile, and each rendered HTML is converted instead.
    html = "<style>{% if name %}</style><p>{{ name }}様 限定</p><style>{% endif %}</style>"
    text, _html = parts(parse(composer(html=html).compose(recipient())))
    assert "佐藤一郎様 限定" in text
    assert text.count(REFUSAL["ja"]) == 1


def test_a_template_that_fails_for_one_recipient_says_where() -> None:
    built = composer(html="<p>{{ name }}</p>\n<p>{{ 100 // attributes.count | default(1) }}</p>")
    with pytest.raises(TemplateInvalid, match="html line 2"):
        built.compose(recipient(attributes={"count": 0}))


async def test_mh4_a_composed_message_crosses_a_real_smtp_server_intact(
    smtp_server: SmtpServer,
) -> None:
    built = composer(html="<html><body><p>.</p>\n.\n<p>{{ name }}様</p></body></html>")
    data = built.compose(recipient())
    await aiosmtplib.send(
        data,
        sender=built.envelope_from,
        recipients=["reader1@example.jp"],
        hostname=smtp_server.host,
        port=smtp_server.port,
    )
    (received,) = smtp_server.messages_to("reader1@example.jp")
    # MH-2: the envelope sender is the sender's own address.
    assert received.mail_from == "news@shodaku.example"
    assert received.data.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    text, html = parts(received.message)
    assert "<p>佐藤一郎様</p>" in html
    assert text.count(REFUSAL["ja"]) == 1


def test_mh4_an_ascii_text_part_goes_as_7bit_not_base64() -> None:
    """An English list's text is plain ASCII: it goes as itself (7bit), since base64-encoded
    ASCII text is what filters score as bogus; a Japanese one goes as base64. Both decode to
    the same text with CRLF line breaks (MH-4)."""
    english = list_identity("en", name="Shodaku News", slug="news-en")
    sender = sender_identity(
        name="Shodaku Inc.",
        postal_address="1-1 Chiyoda, Tokyo",
        responsible_person="Hanako Yamada",
        from_name="News",
    )
    built = composer(
        subject="News", html="<p>Hello {{ name }}</p>", mailing_list=english, sender=sender
    )
    data = built.compose(recipient(name="Ichiro Sato"))
    text_head = data.split(b"\r\n\r\n--")[1].split(b"\r\n\r\n")[0]
    assert b"Content-Transfer-Encoding: 7bit" in text_head
    assert raw_text(parse(data)).startswith("Hello Ichiro Sato\r\n")
    japanese = composer().compose(recipient())
    assert b"Content-Transfer-Encoding: base64" in japanese.split(b"\r\n\r\n--")[1][:200]
