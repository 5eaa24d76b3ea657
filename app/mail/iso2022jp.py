"""ISO-2022-JP (RFC 1468) for lists whose readers are on Japanese carrier addresses (MH-4).

Many Japanese mobile carriers' mail software still shows ISO-2022-JP best, and some show a UTF-8
mail as garbage. ISO-2022-JP covers JIS X 0208 and ASCII only: no half-width katakana, no NEC or
IBM extensions (①, ㈱, №, Ⅰ), no variants outside the standard (髙, 﨑), no emoji.

Two kinds of character are mended rather than refused, because they are the same character under
another code point: those Windows and macOS input methods produce for a JIS character (～ for 〜,
－ for −, ∥ for ‖, the full-width ￠ ￡ ￢), and half-width katakana (ｶﾞ is ガ). Everything else
that does not fit is named by ``unencodable``, so that the preflight can say which characters
stop a campaign, and ``encode`` answers None, so that a message can fall back to UTF-8. So are
the control characters that switch a decoder's character set (ESC, SO, SI): carried as they are,
they would change how everything after them reads.
"""

from __future__ import annotations

import base64
import re
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
# str.translate looks every character up in the table (0.4 ms for 6,000 characters): found by a
# regular expression first, it costs nothing on the text that has none, nearly every text.
_TWINS = re.compile("[～－∥—￠￡￢]")
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]+")
# ESC, SO and SI switch an ISO-2022-JP decoder's character set, and the codec passes them
# through as they are: in a recipient's data they would make the rest of the part, the legal
# footer included (MH-1), read as other characters. ISO-2022-JP cannot carry them as text.
_SHIFTS = "\x0e\x0f\x1b"
# RFC 2047: an encoded word is at most 75 characters. "=?ISO-2022-JP?B?" and "?=" take 18,
# leaving 57 base64 characters: 42 bytes of ISO-2022-JP, escape sequences included.
WORD_WIDTH = 75
_WORD_FRAME = len(f"=?{CHARSET}?B??=")
_HARD_LINE = 998
_BASE64_LINE = 76
_CRLF = "\r\n"


def mend(text: str) -> str:
    """The text with the characters that have a JIS twin replaced by it (see the module)."""
    if _TWINS.search(text):
        text = text.translate(_SAME_CHARACTER)
    if _HALFWIDTH_KANA.search(text):
        # A run at a time, so that a voiced mark joins its kana (ｶﾞ is ガ, not カ゛).
        text = _HALFWIDTH_KANA.sub(lambda run: unicodedata.normalize("NFKC", run.group()), text)
    return text


def unencodable(text: str) -> list[str]:
    """The distinct characters of ``text`` that ISO-2022-JP cannot carry, in order of first use."""
    if encode(text) is not None:
        return []
    mended = mend(text)
    # Each distinct character tried once (a set is built in C): a long message that falls back
    # to UTF-8 is named in milliseconds, not a Python step per character.
    found = [
        char
        for char in set(mended)
        if char in _SHIFTS or (not char.isascii() and _char_code(char) is None)
    ]
    found.sort(key=mended.index)
    return found


def describe(characters: list[str]) -> str:
    """The characters for a person to read: "①, 髙", an invisible one by its code point."""
    return ", ".join(c if c.isprintable() else f"U+{ord(c):04X}" for c in characters)


def _has_shift(text: str) -> bool:
    # Three substring searches: a twentieth of the cost of one regular expression (DS-6 budget).
    return "\x1b" in text or "\x0e" in text or "\x0f" in text


def encode(text: str) -> bytes | None:
    """The mended text in ISO-2022-JP, each line back in ASCII at its end; None if it cannot be."""
    if _has_shift(text):
        return None
    try:
        # Every character mend() replaces is one the codec refuses: try the text as it is first.
        return text.encode(_CODEC)
    except UnicodeEncodeError:
        pass
    try:
        return mend(text).encode(_CODEC)
    except UnicodeEncodeError:
        return None


def encoded_words(value: str, *, first_width: int = WORD_WIDTH) -> str | None:
    """RFC 2047 B-encoded words in ISO-2022-JP, each at most 75 characters (the first at most
    ``first_width``, to leave room for the header's name on its line) and each decodable on its
    own (it ends back in ASCII), folded onto their own lines; None if ``value`` cannot be."""
    if _has_shift(value):
        return None
    words: list[str] = []
    chunk: list[str] = []
    limit = _word_bytes(min(first_width, WORD_WIDTH))
    size = 0  # bytes of the chunk so far, without the escape back to ASCII at its end
    charset = b""  # the character set the chunk ends in (b"": ASCII)
    # The size of a chunk is counted as the codec writes it: each character's own bytes, an
    # escape sequence (3 bytes) where the character set changes, and one back to ASCII at the
    # end; each chunk is then encoded once (encoding every candidate costs 0.5 µs a character).
    known = _CHAR_CODES.get
    for char in mend(value):
        code = known(char) or _char_code(char)
        if code is None:
            return None
        designation, width = code
        grown = size + width + (3 if designation != charset else 0)
        if chunk and grown + (3 if designation else 0) > limit:
            words.append(_word("".join(chunk)))
            chunk = []
            limit = _word_bytes(WORD_WIDTH)
            grown = width + (3 if designation else 0)
        chunk.append(char)
        size = grown
        charset = designation
    if chunk:
        words.append(_word("".join(chunk)))
    return (_CRLF + " ").join(words)


# char -> (its character set's escape sequence, b"" for ASCII; its bytes without escapes).
# Bounded: only characters ISO-2022-JP carries (ASCII and JIS X 0201/0208) are kept.
_CHAR_CODES: dict[str, tuple[bytes, int]] = {}


def _char_code(char: str) -> tuple[bytes, int] | None:
    code = _CHAR_CODES.get(char)
    if code is None:
        try:
            data = char.encode(_CODEC)
        except UnicodeEncodeError:
            return None
        # b"\x1b$B" + two bytes + b"\x1b(B" for JIS X 0208; the byte itself for ASCII.
        code = (data[:3], len(data) - 6) if data[:1] == b"\x1b" else (b"", len(data))
        _CHAR_CODES[char] = code
    return code


def _word_bytes(width: int) -> int:
    """How many bytes of ISO-2022-JP fit in an encoded word of ``width`` characters."""
    return max(0, (width - _WORD_FRAME) // 4 * 3)


def _word(chunk: str) -> str:
    return f"=?{CHARSET}?B?" + base64.b64encode(chunk.encode(_CODEC)).decode("ascii") + "?="


def text_part(content_type: str, text: str) -> bytes | None:
    """A MIME part in ISO-2022-JP: 7bit when every line fits (the form carriers expect), base64
    otherwise; CRLF line breaks; None when the text cannot be encoded."""
    data = encode(text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", ""))
    if data is None:
        return None
    lines = data.split(b"\n")
    data = b"\r\n".join(lines)
    head = f'Content-Type: {content_type}; charset="{CHARSET}"{_CRLF}'
    if max(map(len, lines)) <= _HARD_LINE:
        return f"{head}Content-Transfer-Encoding: 7bit{_CRLF}{_CRLF}".encode() + data
    encoded = base64.b64encode(data)
    body = b"\r\n".join(encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE))
    return f"{head}Content-Transfer-Encoding: base64{_CRLF}{_CRLF}".encode() + body
