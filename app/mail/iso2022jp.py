"""ISO-2022-JP (RFC 1468) for lists whose readers are on Japanese carrier addresses.

Many Japanese mobile carriers' mail software still shows ISO-2022-JP best, and some show a UTF-8
mail as garbage. ISO-2022-JP covers JIS X 0208 and ASCII only: no half-width katakana, no NEC or
IBM extensions (①, ㈱, №, Ⅰ), no variants outside the standard (髙, 﨑), no emoji.

Two kinds of character are mended rather than refused, because they are the same character under
another code point: those Windows and macOS input methods produce for a JIS character (～ for 〜,
－ for −, ∥ for ‖, the full-width ￠ ￡ ￢), and half-width katakana (ｶﾞ is ガ). Everything else
that does not fit is named by ``unencodable``, so that the preflight can say which characters
stop a campaign, and ``encode`` answers None, so that a message can fall back to UTF-8.
"""

from __future__ import annotations

import base64
import unicodedata

CHARSET = "ISO-2022-JP"
_CODEC = "iso2022_jp"
_SAME_CHARACTER = str.maketrans(
    {
        "～": "〜",  # FULLWIDTH TILDE -> WAVE DASH
        "－": "−",  # FULLWIDTH HYPHEN-MINUS -> MINUS SIGN
        "∥": "‖",  # PARALLEL TO -> DOUBLE VERTICAL LINE
        "—": "―",  # EM DASH -> HORIZONTAL BAR
        "￠": "¢",
        "￡": "£",
        "￢": "¬",
    }
)
# RFC 2047: an encoded word is at most 75 characters. "=?ISO-2022-JP?B?" and "?=" take 18,
# leaving 57 base64 characters: 42 bytes of ISO-2022-JP, escape sequences included.
_WORD_BYTES = 42
_HARD_LINE = 998
_BASE64_LINE = 76
_CRLF = "\r\n"


def _is_halfwidth_kana(char: str) -> bool:
    return "\uff61" <= char <= "\uff9f"


def mend(text: str) -> str:
    """The text with the characters that have a JIS twin replaced by it (see the module)."""
    text = text.translate(_SAME_CHARACTER)
    if any(_is_halfwidth_kana(c) for c in text):
        pieces: list[str] = []
        run: list[str] = []
        for char in text:
            if _is_halfwidth_kana(char):
                run.append(char)
                continue
            if run:
                pieces.append(unicodedata.normalize("NFKC", "".join(run)))
                run = []
            pieces.append(char)
        if run:
            pieces.append(unicodedata.normalize("NFKC", "".join(run)))
        text = "".join(pieces)
    return text


def unencodable(text: str) -> list[str]:
    """The distinct characters of ``text`` that ISO-2022-JP cannot carry, in order of first use."""
    found: dict[str, None] = {}
    for char in mend(text):
        if char in found or char.isascii():
            continue
        try:
            char.encode(_CODEC)
        except UnicodeEncodeError:
            found[char] = None
    return list(found)


def encode(text: str) -> bytes | None:
    """The mended text in ISO-2022-JP, each line back in ASCII at its end; None if it cannot be."""
    try:
        return mend(text).encode(_CODEC)
    except UnicodeEncodeError:
        return None


def encoded_words(value: str) -> str | None:
    """RFC 2047 B-encoded words in ISO-2022-JP, each at most 75 characters and each decodable on
    its own (it ends back in ASCII), folded onto their own lines; None if ``value`` cannot be."""
    words: list[str] = []
    chunk = ""
    for char in mend(value):
        candidate = chunk + char
        try:
            size = len(candidate.encode(_CODEC))
        except UnicodeEncodeError:
            return None
        if size > _WORD_BYTES and chunk:
            words.append(_word(chunk))
            chunk = char
        else:
            chunk = candidate
    if chunk:
        words.append(_word(chunk))
    return (_CRLF + " ").join(words)


def _word(chunk: str) -> str:
    return f"=?{CHARSET}?B?" + base64.b64encode(chunk.encode(_CODEC)).decode("ascii") + "?="


def text_part(content_type: str, text: str) -> bytes | None:
    """A MIME part in ISO-2022-JP: 7bit when every line fits (the form carriers expect), base64
    otherwise; CRLF line breaks; None when the text cannot be encoded."""
    data = encode(text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", ""))
    if data is None:
        return None
    lines = data.split(b"\n")
    head = f'Content-Type: {content_type}; charset="{CHARSET}"{_CRLF}'
    if all(len(line) <= _HARD_LINE for line in lines):
        return f"{head}Content-Transfer-Encoding: 7bit{_CRLF}{_CRLF}".encode() + b"\r\n".join(lines)
    encoded = base64.b64encode(b"\r\n".join(lines))
    body = b"\r\n".join(encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE))
    return f"{head}Content-Transfer-Encoding: base64{_CRLF}{_CRLF}".encode() + body
