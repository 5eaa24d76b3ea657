"""Mail at the byte level: header values that cannot inject (MH-4), RFC 2047 encoded words
folded to the line limits, and body parts in a 7-bit transfer encoding.

Shared by the campaign composer and the system mails, so that every mail that leaves is written
by the same rules. Nothing here knows a model or a template: strings in, bytes out.
"""

from __future__ import annotations

import base64
import binascii
from email.utils import formataddr

from app.errors import InvalidInput
from app.mail import iso2022jp

CRLF = "\r\n"
# RFC 5322 asks for lines of at most 78 characters where possible; 998 is the hard limit.
SOFT_LINE = 78
HARD_LINE = 998
_BASE64_LINE = 76
# RFC 2047: a header line that holds an encoded word is at most 76 characters.
ENCODED_LINE = 76
# UTF-8 bytes per RFC 2047 encoded word: 42 bytes -> 56 base64 characters, 68 with the
# "=?utf-8?b?" and "?=" around them, so even "Subject: " plus one word stays within 78 (and
# every word within RFC 2047's 75).
_WORD_BYTES = 42
_HEADER_BREAKERS = ("\r", "\n", "\0")


class UnsafeHeaderValue(InvalidInput):
    """MH-4: a value bound for a header holds a line break or a NUL (header injection)."""


def check_header_value(field: str, value: str) -> str:
    """MH-4: refuse, never repair, a header value that could start a new header line."""
    for c in _HEADER_BREAKERS:
        if c in value:
            raise UnsafeHeaderValue(
                f"{field} would contain a line break or a NUL character; the message is refused."
            )
    return value


def encoded_words(value: str) -> str:
    """RFC 2047 base64 encoded words, each at most 68 characters, folded onto their own lines.

    A word never splits a character (the cut moves back off UTF-8 continuation bytes), so each
    decodes on its own; decoders drop the folding whitespace between adjacent encoded words, so
    the value round-trips exactly.
    """
    data = value.encode("utf-8")
    size = len(data)
    words: list[str] = []
    start = 0
    while start < size:
        end = start + _WORD_BYTES
        if end < size:
            while data[end] & 0xC0 == 0x80:
                end -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?=")
        start = end
    return (CRLF + " ").join(words)


def plain_ascii(value: str) -> bool:
    # Printable ASCII that no decoder could mistake for an encoded word, with single spaces only
    # (so that folding at a space and unfolding give back exactly the same text).
    return (
        value.isascii()
        and value.isprintable()
        and "=?" not in value
        and "  " not in value
        and value == value.strip()
    )


def header_text(name: str, value: str) -> str:
    """An unstructured header value (Subject): as is when short ASCII, folded at spaces when
    long ASCII, RFC 2047 encoded words otherwise (MH-4: non-ASCII headers encoded)."""
    check_header_value(name, value)
    if not value:
        return value
    if plain_ascii(value):
        room = SOFT_LINE - len(name) - 2
        if len(value) <= room:
            return value
        words = value.split(" ")
        if all(len(w) < HARD_LINE - len(name) - 3 for w in words):
            lines: list[str] = []
            line = words[0]
            for word in words[1:]:
                if len(line) + 1 + len(word) > room and line.strip():
                    lines.append(line)
                    line = " " + word
                    room = SOFT_LINE
                else:
                    line += " " + word
            lines.append(line)
            return CRLF.join(lines)
    return encoded_words(value)


def header_text_jis(name: str, value: str) -> str | None:
    """``header_text`` for a message in ISO-2022-JP: plain ASCII written the same way, anything
    else as ISO-2022-JP encoded words, the first leaving room for the header's name (RFC 1468,
    RFC 2047); None when ISO-2022-JP cannot carry the value."""
    check_header_value(name, value)
    if not value or plain_ascii(value):
        return header_text(name, value)
    return iso2022jp.encoded_words(value, first_width=ENCODED_LINE - len(name) - 2)


def _check_address(address: str, field: str) -> None:
    check_header_value(field, address)
    if any(c in address for c in '<>, \t"') or "@" not in address:
        raise UnsafeHeaderValue(f"{field} address is not a single plain address.")
    if not address.isascii():
        # A non-ASCII mailbox needs SMTPUTF8 end to end, which this composer does not offer.
        raise UnsafeHeaderValue(f"{field} address is not ASCII; it cannot be sent.")


def _ascii_phrase(display_name: str) -> bool:
    return display_name.isascii() and display_name.isprintable() and "=?" not in display_name


def mailbox(display_name: str | None, address: str, field: str) -> str:
    """``Name <address>``: quoted when ASCII, encoded words when not."""
    _check_address(address, field)
    if not display_name:
        return address
    check_header_value(field, display_name)
    if _ascii_phrase(display_name):
        return formataddr((display_name, address))
    return f"{encoded_words(display_name)} <{address}>"


def mailbox_jis(display_name: str | None, address: str, field: str) -> str | None:
    """``mailbox`` for a message in ISO-2022-JP: the display name in ISO-2022-JP encoded words;
    None when ISO-2022-JP cannot carry the name."""
    _check_address(address, field)
    if not display_name:
        return address
    check_header_value(field, display_name)
    if _ascii_phrase(display_name):
        return formataddr((display_name, address))
    return phrase_jis(field, display_name, address)


def phrase_jis(field: str, phrase: str, angle: str) -> str | None:
    """``phrase <angle>`` (a mailbox, a List-Id) with the phrase in ISO-2022-JP encoded words and
    ``<angle>`` after them on the same line when it fits, else on a folded line of its own; None
    when ISO-2022-JP cannot carry the phrase."""
    words = iso2022jp.encoded_words(phrase, first_width=ENCODED_LINE - len(field) - 2)
    if words is None:
        return None
    last = words.rpartition(CRLF)[2] if CRLF in words else f"{field}: {words}"
    fold = " " if len(last) + len(angle) + 3 <= ENCODED_LINE else CRLF + " "
    return f"{words}{fold}<{angle}>"


def base64_body(text: str) -> bytes:
    """base64 in 76-character CRLF lines: no line can reach 998 octets, whatever the HTML is.

    One ``b2a_base64`` over the whole body, then cut into lines: about a third cheaper than
    ``base64.encodebytes``, which calls into C once per 57-byte chunk from a Python loop, and
    the HTML part is the largest thing a message carries."""
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    return b"\r\n".join(
        [encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE)]
    )


def text_part(content_type: str, text: str) -> bytes:
    """One MIME body part, headers and body, in a 7-bit transfer encoding (MH-4).

    Text that is ASCII, with no line over the limit, goes as ``7bit``: readable as it is, and
    not the base64-encoded ASCII that filters score as bogus. Anything else goes as base64,
    which no server can refuse for want of 8BITMIME. Line breaks become CRLF either way.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "").split("\n")
    head = f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
    if text.isascii() and all(len(line) <= HARD_LINE for line in lines):
        return f"{head}Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{CRLF.join(lines)}".encode()
    body = base64_body("\n".join(lines).replace("\n", CRLF))
    return f"{head}Content-Transfer-Encoding: base64{CRLF}{CRLF}".encode() + body
