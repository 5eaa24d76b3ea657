"""ISO-2022-JP for carrier addresses: what it can carry, what is mended, what is named."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.mail import iso2022jp


def test_characters_outside_jis_are_named_once_in_order() -> None:
    assert iso2022jp.unencodable("①髙橋様と﨑の①、㈱承諾") == ["①", "髙", "﨑", "㈱"]
    assert iso2022jp.unencodable("山田花子様 ABC 〜") == []


def test_windows_twins_and_halfwidth_kana_are_mended_not_refused() -> None:
    assert iso2022jp.unencodable("１０～２０－ｶﾞｲﾄﾞ∥￥①") == ["①"]
    assert iso2022jp.mend("ｶﾞｲﾄﾞ～") == "ガイド〜"
    assert iso2022jp.encode("ｶﾞｲﾄﾞ") == "ガイド".encode("iso2022_jp")


def test_encode_refuses_what_it_cannot_carry() -> None:
    assert iso2022jp.encode("髙橋") is None
    assert iso2022jp.encoded_words("髙橋") is None
    assert iso2022jp.text_part("text/plain", "髙橋") is None


@pytest.mark.parametrize(
    "subject",
    ["【承諾ニュース】5月号：新製品と夏のイベントのご案内" * 3, "Hello 山田様 and ASCII mixed in"],
)
def test_encoded_words_stay_within_75_and_decode_back(subject: str) -> None:
    folded = iso2022jp.encoded_words(subject)
    assert folded is not None
    for line in folded.split("\r\n"):
        word = line.strip()
        assert len(word) <= 75
        assert word.startswith("=?ISO-2022-JP?B?")
    decoded = str(make_header(decode_header(folded.replace("\r\n", ""))))
    assert decoded == subject


def test_text_part_is_7bit_with_lines_back_in_ascii_and_parses() -> None:
    text = "山田花子様\nいつもありがとうございます。\nABC\n"
    part = iso2022jp.text_part("text/plain", text)
    assert part is not None
    head, _, body = part.partition(b"\r\n\r\n")
    assert b'charset="ISO-2022-JP"' in head
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert all(byte < 128 for byte in body)
    for line in body.split(b"\r\n"):
        # Every line that shifted into JIS X 0208 shifts back to ASCII before it ends.
        if b"\x1b$B" in line:
            assert line.endswith(b"\x1b(B")
    message = email.message_from_bytes(b"MIME-Version: 1.0\r\n" + part, policy=email.policy.default)
    assert message.get_content().replace("\r\n", "\n") == text


@pytest.mark.parametrize("shift", ["\x1b", "\x0e", "\x0f"])
def test_a_character_set_switch_in_the_data_is_refused_not_passed_through(shift: str) -> None:
    """MH-1: the codec would pass ESC, SO and SI through, and a decoder would then read what
    follows (the legal footer) as other characters. They make the text unencodable instead."""
    text = f"佐藤{shift}$B様\n配信停止はこちら"
    assert iso2022jp.encode(text) is None
    assert iso2022jp.text_part("text/html", text) is None
    assert iso2022jp.encoded_words(text) is None
    assert iso2022jp.unencodable(text) == [shift]
    assert iso2022jp.describe(["①", shift]) == f"①, U+{ord(shift):04X}"


def test_the_first_word_leaves_room_for_the_header_name() -> None:
    """RFC 2047: a line holding encoded words stays within 76 characters, "Subject: " included."""
    subject = "【承諾ニュース】5月号：新製品と夏のイベントのご案内とお客様の声"
    folded = iso2022jp.encoded_words(subject, first_width=76 - len("Subject: "))
    assert folded is not None
    lines = f"Subject: {folded}".split("\r\n")
    assert len(lines) > 1
    assert all(len(line) <= 76 for line in lines)
    assert str(make_header(decode_header(folded.replace("\r\n", "")))) == subject


# ASCII, kanji and kana, the JIS X 0201 Roman pair (¥ ‾), Windows twins and half-width kana.
_HEADER_TEXT = st.text(
    alphabet=st.sampled_from(list("ab Z09?=_山田髙花子様【】ー〜～－¥‾ｶﾞｲﾄﾞ①")), max_size=120
)


@given(value=_HEADER_TEXT, first_width=st.integers(min_value=30, max_value=75))
def test_every_word_fits_and_the_value_decodes_back_mended(value: str, first_width: int) -> None:
    """The size of each word is counted without encoding every candidate: the count must be the
    codec's own, or a word would pass its width (RFC 2047: 75 characters)."""
    folded = iso2022jp.encoded_words(value, first_width=first_width)
    if iso2022jp.unencodable(value):
        assert folded is None
        return
    assert folded is not None
    if not value:
        assert folded == ""
        return
    words = [line.strip() for line in folded.split("\r\n")]
    assert len(words[0]) <= first_width
    assert all(len(word) <= 75 for word in words)
    assert str(make_header(decode_header(folded.replace("\r\n", "")))) == iso2022jp.mend(value)
