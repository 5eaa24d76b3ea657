"""Campaign messages of a list whose charset is ISO-2022-JP (carrier addresses): headers in its
encoded words, both parts in it, the HTML declaring it; a message it cannot carry goes out in
UTF-8, whole. The wire bytes are read back with the stdlib parser (MH-4)."""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage

import pytest

from tests.mail.factories import composer, list_identity, parse, parts, recipient, sender_identity

JIS = list_identity(charset="iso-2022-jp")


def _charsets(message: EmailMessage) -> list[str | None]:
    return [part.get_content_charset() for part in message.iter_parts()]


def _header_lines(data: bytes) -> list[str]:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def _raw(data: bytes, name: str) -> str:
    """A header's value as written on the wire, unfolded."""
    unfolded = "\r\n".join(_header_lines(data)).replace("\r\n ", " ")
    [value] = [line.split(": ", 1)[1] for line in unfolded.split("\r\n") if line.startswith(name)]
    return value


def test_a_message_of_an_iso_2022_jp_list_is_written_in_it_and_reads_as_the_utf_8_one() -> None:
    """MH-4: Subject, From, To and List-Id in ISO-2022-JP encoded words of at most 75 characters on
    lines of at most 76 (RFC 2047); both parts ISO-2022-JP, 7bit, with the footer (MH-1); the
    HTML document says so in its own meta; List-Unsubscribe unchanged (MH-3)."""
    reader = recipient()
    data = composer(mailing_list=JIS).compose(reader)
    same = parse(composer().compose(reader))
    message = parse(data)

    lines = _header_lines(data)
    for line in lines:
        assert line.isascii()
        for word in re.findall(r"=\?[^?]+\?[BbQq]\?[^?]*\?=", line):
            assert word.startswith("=?ISO-2022-JP?B?"), line
            assert len(word) <= 75
            assert len(line) <= 76, line
    for name in ("Subject", "From", "To", "List-Id"):
        assert _raw(data, name).startswith("=?ISO-2022-JP?B?")
        assert str(message[name]) == str(same[name])
    raw_headers = "\r\n".join(lines)
    assert "=?utf-8?" not in raw_headers
    assert message["List-Unsubscribe"] == f"<{reader.unsubscribe_url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert _charsets(message) == ["iso-2022-jp", "iso-2022-jp"]
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "7bit"
    assert all(byte < 128 for byte in data)
    text, html = parts(message)
    utf8_text, utf8_html = parts(same)
    assert text == utf8_text
    assert "佐藤一郎様" in text
    assert "今後このようなメールの受信を希望されない場合は" in text
    assert reader.unsubscribe_url in text
    assert reader.unsubscribe_url in html
    assert '<meta charset="ISO-2022-JP">' in html
    assert 'charset="utf-8"' not in html
    # Apart from the container's random id and the declared charset, the same document.
    normalise = re.compile(r"shodaku-[0-9a-f]{16}")
    assert normalise.sub("", html).replace("ISO-2022-JP", "utf-8") == normalise.sub("", utf8_html)


def test_a_recipient_whose_name_is_out_of_reach_gets_the_whole_message_in_utf_8(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """髙 is not in JIS X 0208: that one message goes out in UTF-8 with the name intact,
    never with a replacement character or the character dropped; the next recipient still
    gets ISO-2022-JP. The log names the subscriber and the character, never the address."""
    built = composer(mailing_list=JIS)
    takahashi = recipient(2, name="髙橋一郎", email="takahashi@example.jp")
    with caplog.at_level(logging.INFO, logger="app.mail.compose"):
        data = built.compose(takahashi)
    message = parse(data)
    assert _charsets(message) == ["utf-8", "utf-8"]
    assert str(message["To"]) == "髙橋一郎 <takahashi@example.jp>"
    assert str(message["Subject"]) == "髙橋一郎様へ 今月のお知らせ"
    text, html = parts(message)
    assert "髙橋一郎様" in text
    assert "髙橋一郎様" in html
    assert text.split("\n")[0] == "髙橋一郎様"
    assert '<meta charset="utf-8">' in html
    [record] = [r for r in caplog.records if "UTF-8" in r.getMessage()]
    assert "subscriber 2" in record.getMessage()
    assert "髙" in record.getMessage()
    assert "takahashi" not in record.getMessage()

    assert _charsets(parse(built.compose(recipient(3)))) == ["iso-2022-jp", "iso-2022-jp"]


def test_windows_twins_and_half_width_kana_in_a_name_are_mended_not_a_fallback() -> None:
    message = parse(composer(mailing_list=JIS).compose(recipient(name="ｻﾄｳ～ﾊﾅｺ")))
    assert _charsets(message) == ["iso-2022-jp", "iso-2022-jp"]
    assert str(message["To"]).startswith("サトウ〜ハナコ <")
    assert "サトウ〜ハナコ様" in parts(message)[0]


@pytest.mark.parametrize("shift", ["\x1b(B", "\x1b$B", "\x0e"])
def test_mh1_a_character_set_switch_in_a_name_cannot_garble_the_footer(shift: str) -> None:
    """A name carrying ISO-2022-JP's own escape sequence would, passed through, make a decoder
    read the rest of the part (the footer) as other characters: that message goes in UTF-8,
    where an escape changes nothing, and the footer reads as written in both parts."""
    message = parse(composer(mailing_list=JIS).compose(recipient(name=f"佐藤{shift}一郎")))
    assert _charsets(message) == ["utf-8", "utf-8"]
    for part in parts(message):
        assert "今後このようなメールの受信を希望されない場合は" in part
        assert "株式会社承諾" in part


def test_a_from_name_out_of_reach_sends_every_message_in_utf_8(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The preflight refuses such a campaign; were the sender changed after it, the messages
    still go out whole, in UTF-8, and the log says why once."""
    with caplog.at_level(logging.WARNING, logger="app.mail.compose"):
        built = composer(mailing_list=JIS, sender=sender_identity(from_name="①承諾ニュース"))
    assert any("①" in r.getMessage() for r in caplog.records)
    message = parse(built.compose(recipient()))
    assert _charsets(message) == ["utf-8", "utf-8"]
    assert str(message["From"]) == "①承諾ニュース <news@shodaku.example>"


def test_a_utf_8_list_is_unchanged() -> None:
    """The default charset writes what it always did: UTF-8 parts, UTF-8 encoded words."""
    data = composer().compose(recipient())
    message = parse(data)
    assert _charsets(message) == ["utf-8", "utf-8"]
    assert b"=?utf-8?b?" in data
    assert b"ISO-2022-JP" not in data
    assert '<meta charset="utf-8">' in parts(message)[1]
