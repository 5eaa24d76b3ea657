"""The confirmation mail as written on the wire (MH-4, CC-3): headers within the line limits,
encoded words within RFC 2047's 75 characters, 7-bit parts with CRLF line breaks, no stray
headers inside the parts, and a proper HTML document."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from app.mail.system_mail import SystemMail
from tests.mail.factories import list_identity, sender_identity

CONFIRM_URL = "https://news.example.test/confirm/" + "A" * 80


def confirmation(language: str, list_name: str = "承諾ニュース", **sender: str) -> bytes:
    return SystemMail().confirmation(
        to="hanako@example.jp",
        mailing_list=list_identity(language, name=list_name),
        sender=sender_identity(**sender),
        confirm_url=CONFIRM_URL,
        expires_days=7,
    )


def head_and_parts(data: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    head, _, body = data.partition(b"\r\n\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', head)
    assert boundary
    chunks = body.split(b"--" + boundary.group(1))
    parts = []
    for chunk in chunks[1:-1]:
        part_head, _, part_body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        parts.append((part_head.decode("ascii"), part_body))
    return head.decode("ascii"), parts


@pytest.mark.parametrize("language", ["ja", "en"])
def test_mh4_header_lines_and_encoded_words_stay_within_the_limits(language: str) -> None:
    data = confirmation(language)
    head, _ = head_and_parts(data)
    for line in head.split("\r\n"):
        assert len(line) <= 78, line
    for word in re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head):
        assert len(word) <= 75, word
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    subject = str(message["Subject"])
    assert ("確認" in subject) if language == "ja" else ("confirm" in subject)
    assert message["Auto-Submitted"] == "auto-generated"
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, no bare LF or CR


@pytest.mark.parametrize("language", ["ja", "en"])
def test_mh4_parts_are_7bit_with_crlf_and_carry_no_stray_headers(language: str) -> None:
    # An English sender and list, so that the English text part is ASCII only.
    english = {"name": "Shodaku Inc.", "postal_address": "1-1 Chiyoda, Tokyo", "from_name": "News"}
    if language == "en":
        data = confirmation(language, "Shodaku News", **english)
    else:
        data = confirmation(language)
    _, parts = head_and_parts(data)
    assert [h.splitlines()[0] for h, _ in parts] == [
        'Content-Type: text/plain; charset="utf-8"',
        'Content-Type: text/html; charset="utf-8"',
    ]
    for part_head, body in parts:
        names = [line.split(":")[0].lower() for line in part_head.split("\r\n")]
        assert names == ["content-type", "content-transfer-encoding"]
        assert max(len(line) for line in body.split(b"\r\n")) <= 998
        assert all(byte < 128 for byte in body)
    text_head, text_body = parts[0]
    if language == "en":
        # ASCII text goes as itself, not as base64 (which filters score as bogus).
        assert "Content-Transfer-Encoding: 7bit" in text_head
        decoded = text_body
    else:
        assert "Content-Transfer-Encoding: base64" in text_head
        decoded = base64.b64decode(text_body)
    assert CONFIRM_URL.encode() in decoded
    assert b"\r\n" in decoded
    assert b"\n" not in decoded.replace(b"\r\n", b"")


@pytest.mark.parametrize("language", ["ja", "en"])
def test_html_part_is_a_whole_document_with_the_link_in_words(language: str) -> None:
    message = email.message_from_bytes(confirmation(language), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert f'<html lang="{language}">' in html
    assert '<meta charset="utf-8">' in html
    assert 'name="viewport"' in html
    assert "Noto Sans JP" in html
    # The button says what it does; the raw URL is only the fallback, allowed to wrap.
    button = re.search(r'<a href="([^"]+)" style="display:inline-block[^>]*>([^<]+)</a>', html)
    assert button
    assert button.group(1) == CONFIRM_URL
    assert button.group(2) == ("登録を確認する" if language == "ja" else "Confirm my subscription")


def test_cc3_the_confirmation_comes_in_the_persons_language_whatever_the_lists() -> None:
    """Issue #11: a person who signed up in English on a Japanese list reads an English
    confirmation; one who said nothing reads the list's language."""
    japanese_list = list_identity("ja")
    for language, expected, words in (
        ("en", "en", "If it was you, open the link below"),
        (None, "ja", "お申し込みいただきました"),
    ):
        data = SystemMail().confirmation(
            to="mary@example.com",
            mailing_list=japanese_list,
            sender=sender_identity(),
            confirm_url=CONFIRM_URL,
            expires_days=7,
            language=language,
        )
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        text_part = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        assert text_part is not None
        assert html_part is not None
        assert words in str(text_part.get_content())
        assert f'<html lang="{expected}">' in str(html_part.get_content())


def _jis_confirmation(consent_text: str | None = None, **sender: str) -> bytes:
    return SystemMail().confirmation(
        to="hanako@example.jp",
        mailing_list=list_identity("ja", charset="iso-2022-jp"),
        sender=sender_identity(**sender),
        confirm_url=CONFIRM_URL,
        expires_days=7,
        consent_text=consent_text,
    )


def _read(data: bytes) -> tuple[EmailMessage, list[str | None], str, str]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text_part, html_part = message.iter_parts()
    charsets = [text_part.get_content_charset(), html_part.get_content_charset()]
    return message, charsets, str(text_part.get_content()), str(html_part.get_content())


def test_cc3_the_confirmation_of_an_iso_2022_jp_list_is_written_in_it() -> None:
    """The confirmation mail of a list for carrier addresses: Subject and From in ISO-2022-JP
    encoded words within the limits, both parts ISO-2022-JP and 7bit, the HTML document
    declaring it, and the same text a UTF-8 list's mail reads."""
    wording = "株式会社承諾からのお知らせメール（広告を含みます）の受信に同意します。"
    data = _jis_confirmation(wording)
    head, raw_parts = head_and_parts(data)
    for line in head.split("\r\n"):
        assert len(line) <= 76, line
        for word in re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", line):
            assert word.startswith("=?ISO-2022-JP?B?"), word
    assert all(byte < 128 for byte in data)
    assert [h.split("\r\n")[1] for h, _ in raw_parts] == ["Content-Transfer-Encoding: 7bit"] * 2

    message, charsets, text, html = _read(data)
    assert charsets == ["iso-2022-jp", "iso-2022-jp"]
    utf8 = SystemMail().confirmation(
        to="hanako@example.jp",
        mailing_list=list_identity("ja"),
        sender=sender_identity(),
        confirm_url=CONFIRM_URL,
        expires_days=7,
        consent_text=wording,
    )
    same, utf8_charsets, utf8_text, utf8_html = _read(utf8)
    assert utf8_charsets == ["utf-8", "utf-8"]
    assert str(message["Subject"]) == str(same["Subject"])
    assert str(message["From"]) == str(same["From"]) == "承諾ニュース <news@shodaku.example>"
    assert text == utf8_text
    assert wording in text
    assert CONFIRM_URL in text
    assert '<meta charset="ISO-2022-JP">' in html
    assert html.replace("ISO-2022-JP", "utf-8") == utf8_html


@pytest.mark.parametrize(
    ("sender", "wording", "character"),
    [
        ({"from_name": "髙島屋ニュース"}, None, "髙島屋ニュース"),
        ({}, "①お知らせメールの受信に同意します。", "①お知らせ"),
    ],
)
def test_a_confirmation_iso_2022_jp_cannot_carry_goes_whole_in_utf_8(
    sender: dict[str, str], wording: str | None, character: str
) -> None:
    """The sender's name or the quoted wording out of ISO-2022-JP's reach: the mail goes in
    UTF-8, every character intact, its HTML declaring UTF-8."""
    message, charsets, text, html = _read(_jis_confirmation(wording, **sender))
    assert charsets == ["utf-8", "utf-8"]
    assert character in str(message["From"]) + text
    assert '<meta charset="utf-8">' in html
