"""ISO-2022-JP for carrier addresses: what it can carry, what is mended, what is named."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header

import pytest

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
