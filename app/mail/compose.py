"""Campaign message composition: the hot path of sending (docs/architecture.md, "Sending").

``CampaignComposer.build`` does everything that is the same for every recipient once per campaign:
it compiles the template in the sandbox, renders the legal footer for the sender and list (only
the unsubscribe URL is left to fill in), derives the plain-text template from the HTML one when no
text is given, and writes the fixed headers and the MIME skeleton. ``compose`` then renders the
per-recipient parts and joins byte strings; it does not go through ``email.message`` at all,
which costs about 20 times more per message. The output is proven well-formed by parsing it with
the stdlib parser in the tests (MH-4).

The HTML part is a document Shodaku writes itself (app/mail/html_document.py): the template's
content parsed, written back balanced into a confined box, its styles scoped to that box, and
the legal footer after it where the template cannot reach (MH-1). The text part ends with the
footer, control characters removed.

Why the text part is derived from the HTML *template* and not from each rendered HTML: converting
HTML with inscriptis costs about 0.8 ms for a 6 KB newsletter, five times the whole budget of a
message. The template is converted once with every Jinja tag protected, then compiled as the text
template; when that does not compile or render (a Jinja block split by markup inscriptis drops),
the composer falls back to converting each rendered HTML, correct but slow.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    meta,
    select_autoescape,
)
from markupsafe import Markup

from app.config import Settings
from app.languages import LANGS, choose_lang
from app.mail import iso2022jp
from app.mail.dkim import DkimKeyring, DkimSigner
from app.mail.html_document import HtmlPart, declare_charset
from app.mail.identity import ISO_2022_JP, ListIdentity, SenderIdentity
from app.mail.mime import (
    CRLF,
    HARD_LINE,
    UnsafeHeaderValue,
    encoded_words,
    header_text,
    header_text_jis,
    mailbox,
    mailbox_jis,
    phrase_jis,
    text_part,
)
from app.mail.mime import base64_body as _base64_body
from app.mail.mime import check_header_value as _check_header_value
from app.mail.mime import plain_ascii as _plain_ascii
from app.mail.sandbox import (
    TEXT_ENV,
    TemplateInvalid,
    compile_part,
    render_error,
    render_part,
)
from app.mail.system_mail import (
    EMAIL_TEMPLATES_DIR,
    make_message_id,
)

__all__ = [
    "CampaignComposer",
    "CampaignComposers",
    "Recipient",
    "RenderedMessage",
    "TemplateInvalid",
    "TemplateOutput",
    "UnsafeHeaderValue",
    "Version",
    "derive_text_source",
    "encoded_words",
    "header_text",
    "mailbox",
    "sample_recipient",
]

log = logging.getLogger(__name__)

_URL = re.compile(r"https?://[!-;=?-~]+")  # printable ASCII without '<' and '>', no spaces
_LIST_ID_LABEL = re.compile(r"[^A-Za-z0-9-]+")
_INSCRIPTIS = ParserConfig(display_links=True)

_FOOTER_ENV = Environment(
    loader=FileSystemLoader(EMAIL_TEMPLATES_DIR),
    undefined=StrictUndefined,
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=False,
    auto_reload=False,
)
# Template variables that are the same for every recipient of a campaign.
_CAMPAIGN_VARIABLES = frozenset({"list", "sender"})


@dataclass(frozen=True, slots=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str | None
    attributes: dict[str, Any]
    unsubscribe_url: str
    # RFC 2369: where a refusal can also be mailed (SHODAKU_BOUNCE_DOMAIN), after the URL.
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """What a recipient reads: the subject and both bodies, the legal footer in both."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class TemplateOutput:
    """What the template itself writes for one recipient, the footer left out: the subject,
    the text part's body, and the HTML document up to the footer."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class _JisSkeleton:
    """What of a message in ISO-2022-JP is the same for every recipient of the campaign."""

    fixed_headers: bytes  # From to the first boundary, as in the UTF-8 skeleton
    separator: bytes  # the boundary between the text part and the HTML part
    subject: str | None  # the Subject header, when it is the same for everyone


_BLANK_RUN = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """inscriptis' text, without the trailing spaces its table layout pads lines with."""
    text = "\n".join(line.rstrip() for line in get_text(html, _INSCRIPTIS).splitlines())
    return _BLANK_RUN.sub("\n\n", text).strip()


_JINJA_DELIMITERS = (("{{", "}}"), ("{%", "%}"), ("{#", "#}"))
_PROTECTED = re.compile("\ue000(\\d+)\ue001")


def _jinja_tags(source: str) -> Iterator[tuple[int, int]]:
    """The spans of the Jinja tags in ``source``, leftmost first, as the lazy regex
    ``{{.*?}}|{%.*?%}|{#.*?#}`` would find them, in linear time (DS-6). The regex is quadratic:
    at every ``{{`` that is never closed it scans to the end again (a 30 KB template of
    ``{% raw %}`` and ``{{`` took 5.5 s, holding every other request). Here each kind is
    searched forward only, and a kind whose closing is missing is not searched again."""
    openers = {kind: source.find(kind[0]) for kind in _JINJA_DELIMITERS}
    at = 0
    while True:
        live = [(position, kind) for kind, position in openers.items() if position >= 0]
        if not live:
            return
        start, (opening, closing) = min(live)
        end = source.find(closing, start + len(opening))
        if end < 0:  # never closed: no later tag of this kind is closed either
            openers[(opening, closing)] = -1
            continue
        at = end + len(closing)
        yield start, at
        for kind, position in openers.items():
            if 0 <= position < at:
                openers[kind] = source.find(kind[0], at)


def derive_text_source(html_source: str) -> str:
    """A Jinja text template derived from an HTML template by inscriptis, once per campaign.

    Each Jinja tag is swapped for a private-use token inscriptis keeps as text, converted, then
    put back; braces that come out of the HTML as text are escaped so they stay text.
    """
    tags: list[str] = []

    protected: list[str] = []
    done = 0
    for start, end in _jinja_tags(html_source):
        protected.append(html_source[done:start])
        tags.append(html_source[start:end])
        protected.append(f"\ue000{len(tags) - 1}\ue001")
        done = end
    protected.append(html_source[done:])
    converted = html_to_text("".join(protected))
    pieces = _PROTECTED.split(converted)
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(tags[int(piece)])
        else:
            out.append(piece.replace("{", "{{ '{' }}"))
    return "".join(out)


_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What shows nothing on a line: any whitespace but the newline (ideographic space, no-break
# space...), format characters (zero-width space and joiners, bidi marks, soft hyphen, BOM) and
# the blank-looking fillers (Braille blank, Hangul fillers). A line of only these is blank.
_INVISIBLE = (
    "[^\\S\\n]|[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
    "\u2800\u3164\u115f\u1160\uffa0]"
)
_BLANK_LINES = re.compile(f"\\n(?:(?:{_INVISIBLE})*\\n){{2,}}")


def _text_with_footer(body: str, footer: str) -> str:
    """MH-1: the text part ends with the footer. Control characters (a carriage return, an
    escape sequence, a backspace) are removed so that no viewer can be made to draw over it,
    and long runs of blank lines are shortened so that it cannot be pushed out of sight."""
    body = _BLANK_LINES.sub("\n\n", _CONTROLS.sub("", body)).strip()
    return f"{body}\n\n{footer}\n" if body else f"{footer}\n"


@dataclass(frozen=True, slots=True)
class _Footer:
    """The rendered footer split around its unsubscribe URL, the only per-recipient item."""

    text_parts: list[str]
    html_parts: list[str]

    def text(self, url: str) -> str:
        return url.join(self.text_parts)

    def html(self, url: str) -> str:
        return html_lib.escape(url, quote=True).join(self.html_parts)


def _contact_href(url: str | None) -> str | None:
    return url if url and url.lower().startswith(("https://", "http://")) else None


def footer_language(mailing_list: ListIdentity, language: str | None = None) -> str:
    """The language of a recipient's legal footer: theirs, else the list's, else Japanese."""
    return choose_lang(language, mailing_list.language)


def _render_footer(sender: SenderIdentity, mailing_list: ListIdentity, lang: str) -> _Footer:
    """MH-1: the display items, from the sender record, in the recipient's language."""
    placeholder = f"shodakuunsubscribe{secrets.token_hex(8)}"
    context = {
        "lang": lang,
        "list_name": mailing_list.name,
        "sender_name": sender.name,
        "responsible_person": sender.responsible_person,
        "postal_address": sender.postal_address.strip(),
        "postal_address_html": Markup("<br>\n").join(sender.postal_address.strip().splitlines()),
        "contact_email": sender.contact_email,
        "contact_phone": sender.contact_phone,
        "contact_url": sender.contact_url,
        "contact_url_href": _contact_href(sender.contact_url),
        "unsubscribe_url": placeholder,
    }
    text = _FOOTER_ENV.get_template(f"footer_{lang}.txt").render(context)
    html = _FOOTER_ENV.get_template(f"footer_{lang}.html").render(context)
    return _Footer(text_parts=text.split(placeholder), html_parts=html.split(placeholder))


def _list_unsubscribe(recipient: Recipient) -> str:
    """MH-3, RFC 8058: the https URI first (what one-click posts to), then, when set, the
    mailto address (RFC 2369) a refusal can be sent to. One header line, never folded."""
    value = f"<{recipient.unsubscribe_url}>"
    if recipient.unsubscribe_mailto is not None:
        value += f", <mailto:{recipient.unsubscribe_mailto}>"
    if len(value) > HARD_LINE - len("List-Unsubscribe: ") or not value.isascii():
        raise UnsafeHeaderValue("the unsubscribe URL is too long for one header line.")
    return value


def sample_recipient(settings: Settings) -> Recipient:
    """The recipient a template is tried on when it is saved and previewed without a subscriber."""
    return Recipient(
        subscriber_id=0,
        email="taro@example.jp",
        name="山田太郎",
        attributes={},
        unsubscribe_url=f"{settings.base_url}/unsubscribe/sample",
    )


class CampaignComposer:
    """Composes every message of one campaign (MH-1..MH-4); built once, used per recipient."""

    __slots__ = (
        "_base_context",
        "_boundary_html",
        "_date",
        "_date_second",
        "_derived_text",
        "_end",
        "_fixed_headers",
        "_footer",
        "_html",
        "_jis",
        "_message_id_domain",
        "_signer",
        "_subject",
        "_subject_header",
        "_text",
        "envelope_from",
    )

    envelope_from: str
    _base_context: dict[str, Any]
    _boundary_html: bytes
    _date: str
    _date_second: int
    _derived_text: bool
    _end: bytes
    _fixed_headers: bytes
    _footer: _Footer
    _html: HtmlPart
    _jis: _JisSkeleton | None
    _message_id_domain: str
    _signer: DkimSigner | None
    _subject: Template
    _subject_header: str | None
    _text: Template | None

    def __init__(self) -> None:
        raise TypeError("use CampaignComposer.build()")

    @classmethod
    def build(
        cls,
        *,
        subject: str,
        html: str,
        text: str | None,
        sender: SenderIdentity,
        mailing_list: ListIdentity,
        settings: Settings,
        dkim: bool = True,
        language: str | None = None,
        content_language: str | None = None,
    ) -> CampaignComposer:
        """Compile the template and prepare everything that does not vary per recipient.

        ``language`` is that of the recipients it composes for: the legal footer is in it
        (MH-1); default, the list's. ``content_language`` is the template's, for the HTML
        document's ``lang`` (the footer says its own); default, ``language``.

        A list whose charset is ISO-2022-JP gets its messages in ISO-2022-JP; one that it cannot
        carry (a character of a recipient's name, say) goes out in UTF-8, never mended into
        other characters or with characters lost.

        Raises :class:`TemplateInvalid` for a template that does not compile, does not render for
        the sample recipient, puts ``{{ footer }}`` where nobody would see it or leaves markup
        open at its end (MH-1: refused with the reason); :class:`UnsafeHeaderValue` for a
        sender or list value that would break a header (MH-4). ``dkim=False`` skips loading
        the signing key, for previews and template checks that send nothing.
        """
        self = object.__new__(cls)
        _check_header_value("subject", subject)
        self._subject = compile_part("subject", subject)
        # MH-2: the envelope sender and the Message-ID are on the sender's own domain.
        self.envelope_from = _check_header_value("from_email", sender.from_email)
        domain = sender.domain
        try:
            self._message_id_domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnsafeHeaderValue("from_email has a domain that cannot be encoded.") from exc
        lang = footer_language(mailing_list, language)
        self._footer = _render_footer(sender, mailing_list, lang)
        # MH-1: the footer is not the template's to place. ``{{ footer }}`` renders as nothing
        # (templates written when it marked the footer's place keep working); the system writes
        # the footer after the content, in both parts.
        self._html = HtmlPart(html, language=content_language or lang, footer=self._footer.html)
        self._base_context = {
            "list": {"name": mailing_list.name, "slug": mailing_list.slug},
            "sender": {
                "name": sender.name,
                "postal_address": sender.postal_address,
                "contact_email": sender.contact_email,
                "contact_phone": sender.contact_phone,
                "contact_url": sender.contact_url,
            },
            "footer": Markup(""),
        }
        # MH-3 and DMARC: signed with the key of the From domain (or a parent), or not at all.
        self._signer = DkimKeyring.from_settings(settings).for_domain(domain) if dkim else None
        self._date_second = -1
        self._date = ""

        sample = sample_recipient(settings)
        sample_context = self._context(sample)
        # A subject that uses no per-recipient variable is the same for everyone: encode it once.
        fixed_subject: str | None = None
        if meta.find_undeclared_variables(TEXT_ENV.parse(subject)) - _CAMPAIGN_VARIABLES:
            self._subject_header = None
        else:
            fixed_subject = self._render_subject(sample_context)
            self._subject_header = header_text("Subject", fixed_subject)
        marker = f"shodakufooter{secrets.token_hex(12)}"
        if marker in self._render_subject({**sample_context, "footer": marker}):
            raise TemplateInvalid("subject: the footer cannot be placed in the subject.")
        self._html.check_sample(sample_context, marker)

        self._derived_text = text is None
        if text is not None:
            self._text = compile_part("text", text)
            render_part("text", self._text, sample_context)
        else:
            try:
                self._text = compile_part("text", derive_text_source(html))
                render_part("text", self._text, sample_context)
            except TemplateInvalid:
                self._text = None  # converted per recipient instead: slower, always right

        self._build_skeleton(sender, mailing_list, fixed_subject)
        return self

    def _build_skeleton(
        self, sender: SenderIdentity, mailing_list: ListIdentity, fixed_subject: str | None
    ) -> None:
        domain = self._message_id_domain
        label = _LIST_ID_LABEL.sub("-", mailing_list.slug).strip("-") or f"list-{mailing_list.id}"
        list_id = f"{label}.{domain}"
        list_name = _check_header_value("list name", mailing_list.name)
        from_name = sender.from_name or sender.name
        if _plain_ascii(list_name):
            list_phrase = '"' + list_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            list_header = f"{list_phrase} <{list_id}>"
        else:
            list_header = f"{encoded_words(list_name)} <{list_id}>"
        boundary = f"=_shodaku_{secrets.token_hex(16)}"
        self._fixed_headers = self._skeleton_headers(
            mailbox(from_name, sender.from_email, "From"), sender, list_header, boundary
        )
        self._boundary_html = (
            f"{CRLF}--{boundary}{CRLF}"
            f'Content-Type: text/html; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
        ).encode("ascii")
        self._end = f"{CRLF}--{boundary}--{CRLF}".encode("ascii")
        self._jis = None
        if mailing_list.charset != ISO_2022_JP:
            return
        jis_list_header = (
            list_header if _plain_ascii(list_name) else phrase_jis("List-Id", list_name, list_id)
        )
        from_header = mailbox_jis(from_name, sender.from_email, "From")
        subject_header = (
            None if fixed_subject is None else header_text_jis("Subject", fixed_subject)
        )
        if jis_list_header is None or from_header is None or (fixed_subject and not subject_header):
            # The sender's name, the list's name or the subject, the same in every message, is
            # out of ISO-2022-JP's reach (the preflight refuses that): every message in UTF-8.
            log.warning(
                "list %s: messages go out in UTF-8; ISO-2022-JP cannot carry %s",
                mailing_list.id,
                iso2022jp.describe(
                    iso2022jp.unencodable(f"{from_name}{list_name}{fixed_subject or ''}")
                ),
            )
            return
        self._jis = _JisSkeleton(
            fixed_headers=self._skeleton_headers(from_header, sender, jis_list_header, boundary),
            separator=f"{CRLF}--{boundary}{CRLF}".encode("ascii"),
            subject=subject_header,
        )

    @staticmethod
    def _skeleton_headers(
        from_header: str, sender: SenderIdentity, list_id: str, boundary: str
    ) -> bytes:
        headers = ["From: " + from_header]
        if sender.reply_to:
            headers.append("Reply-To: " + mailbox(None, sender.reply_to, "Reply-To"))
        headers += [
            f"List-Id: {list_id}",
            # MH-3: RFC 8058 one-click; the URI itself is written per recipient.
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"',
            "",
            f"--{boundary}",
            "",
        ]
        return CRLF.join(headers).encode("ascii")

    def _context(self, recipient: Recipient) -> dict[str, Any]:
        context = dict(self._base_context)
        context["name"] = recipient.name or ""
        context["email"] = recipient.email
        context["attributes"] = recipient.attributes
        context["unsubscribe_url"] = recipient.unsubscribe_url
        return context

    def _render_subject(self, context: Mapping[str, Any]) -> str:
        return render_part("subject", self._subject, context).strip()

    def _text_body(self, context: Mapping[str, Any]) -> str:
        if self._text is not None:
            try:
                return self._text.render(context)
            except Exception as exc:
                if not self._derived_text:
                    raise render_error("text", exc) from exc
        return html_to_text(self._html.plain(context))

    def template_output(self, recipient: Recipient) -> TemplateOutput:
        """What the template writes for this recipient, the footer left out (for the preflight,
        which tells the template's characters from the sender's)."""
        context = self._context(recipient)
        return TemplateOutput(
            subject=self._render_subject(context),
            text=_CONTROLS.sub("", self._text_body(context)),
            html=self._html.content(context),
        )

    def render(self, recipient: Recipient) -> RenderedMessage:
        """The subject and both bodies for one recipient, the legal footer in both (MH-1)."""
        url = recipient.unsubscribe_url
        if not _URL.fullmatch(url):
            raise UnsafeHeaderValue("the unsubscribe URL is not a single http(s) URL.")
        context = self._context(recipient)
        subject = self._render_subject(context)
        text_body = self._text_body(context)
        return RenderedMessage(
            subject=subject,
            html=self._html.render(context, url),
            text=_text_with_footer(text_body, self._footer.text(url)),
        )

    def _date_header(self) -> str:
        # format_datetime costs microseconds; a campaign sends thousands of messages a second.
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date = format_datetime(datetime.fromtimestamp(second, UTC))
        return self._date

    def compose(self, recipient: Recipient) -> bytes:
        """The complete message for one recipient, CRLF line endings, DKIM-signed when on.

        MH-4: one From, one Date, a unique Message-ID on the sender's domain, non-ASCII headers
        encoded, no line over 998 octets, multipart/alternative with text/plain first.
        MH-3: ``List-Unsubscribe`` is one http(s) URI (and with a bounce domain a mailto after
        it), never folded or encoded.

        Raises, for this recipient only, :class:`UnsafeHeaderValue` (a name, address, subject or
        URL that would break a header) or :class:`TemplateInvalid` (the template fails on this
        recipient's data); the campaign's other messages are unaffected.
        """
        message = self.render(recipient)
        list_unsubscribe = _list_unsubscribe(recipient)
        if self._jis is not None:
            jis = self._compose_jis(self._jis, recipient, message)
            if jis is not None:
                return self._signer.sign(jis) if self._signer is not None else jis
        subject = self._subject_header
        if subject is None:
            subject = header_text("Subject", message.subject)
        head = (
            f"Date: {self._date_header()}{CRLF}"
            f"To: {mailbox(recipient.name, recipient.email, 'To')}{CRLF}"
            f"Subject: {subject}{CRLF}"
            f"Message-ID: {make_message_id(self._message_id_domain)}{CRLF}"
            f"List-Unsubscribe: {list_unsubscribe}{CRLF}"
        )
        data = b"".join(
            (
                head.encode("ascii"),
                self._fixed_headers,
                # 7bit when the text is plain ASCII (an English list), base64 otherwise; CRLF
                # line breaks either way (MH-4).
                text_part("text/plain", message.text),
                self._boundary_html,
                _base64_body(message.html),
                self._end,
            )
        )
        if self._signer is not None:
            return self._signer.sign(data)
        return data

    def _compose_jis(
        self, skeleton: _JisSkeleton, recipient: Recipient, message: RenderedMessage
    ) -> bytes | None:
        """MH-4: the message in ISO-2022-JP (RFC 1468): headers in its encoded words, both parts in
        it, the HTML document declaring it. None when this recipient's message has a character
        ISO-2022-JP cannot carry: it then goes out in UTF-8, every character intact."""
        subject = skeleton.subject
        if subject is None:
            subject = header_text_jis("Subject", message.subject)
        to = mailbox_jis(recipient.name, recipient.email, "To")
        text = iso2022jp.text_part("text/plain", message.text)
        html = iso2022jp.text_part("text/html", declare_charset(message.html, iso2022jp.CHARSET))
        if subject is None or to is None or text is None or html is None:
            # The subscriber's id, never the address (DS-6); the characters are what to fix.
            log.info(
                "subscriber %s: message sent in UTF-8; ISO-2022-JP cannot carry %s",
                recipient.subscriber_id,
                iso2022jp.describe(
                    iso2022jp.unencodable(
                        f"{message.subject}{recipient.name or ''}{message.text}{message.html}"
                    )
                ),
            )
            return None
        head = (
            f"Date: {self._date_header()}{CRLF}"
            f"To: {to}{CRLF}"
            f"Subject: {subject}{CRLF}"
            f"Message-ID: {make_message_id(self._message_id_domain)}{CRLF}"
            f"List-Unsubscribe: {_list_unsubscribe(recipient)}{CRLF}"
        )
        return b"".join(
            (
                head.encode("ascii"),
                skeleton.fixed_headers,
                text,
                skeleton.separator,
                html,
                self._end,
            )
        )


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a campaign's content: the template copy its recipients get."""

    subject: str
    html: str
    text: str | None


class CampaignComposers:
    """The composers of one campaign, one per language its recipients read (ja, en).

    A recipient gets the campaign's version for their language when it has one, else its main
    version (the list's language), and always the legal footer in their own language (MH-1).
    Each composer is built on first use, once per campaign and language, so choosing one costs a
    recipient a dictionary lookup.
    """

    __slots__ = ("_built", "_dkim", "_list", "_main", "_sender", "_settings", "_versions")

    def __init__(
        self,
        *,
        main: Version,
        versions: Mapping[str, Version],
        sender: SenderIdentity,
        mailing_list: ListIdentity,
        settings: Settings,
        dkim: bool = True,
    ) -> None:
        self._main = main
        self._versions = dict(versions)
        self._sender = sender
        self._list = mailing_list
        self._settings = settings
        self._dkim = dkim
        self._built: dict[str | None, CampaignComposer] = {}

    @property
    def envelope_from(self) -> str:
        return self.for_language(None).envelope_from

    def for_language(self, language: str | None) -> CampaignComposer:
        """The composer for recipients of ``language`` (None: the list's)."""
        composer = self._built.get(language)
        if composer is None:
            lang = footer_language(self._list, language)
            composer = self._built.get(lang)
            if composer is None:
                version = self._versions.get(lang)
                composer = CampaignComposer.build(
                    subject=(version or self._main).subject,
                    html=(version or self._main).html,
                    text=(version or self._main).text,
                    sender=self._sender,
                    mailing_list=self._list,
                    settings=self._settings,
                    dkim=self._dkim,
                    language=lang,
                    # The main version is in the list's language, a variant in its own.
                    content_language=lang if version else footer_language(self._list),
                )
                self._built[lang] = composer
            self._built[language] = composer
        return composer

    def build_all(self) -> None:
        """Build the composer of every language now: whatever a recipient reads composes, or
        this raises as ``CampaignComposer.build`` does."""
        for lang in LANGS:
            self.for_language(lang)

    def compose(self, recipient: Recipient, language: str | None) -> bytes:
        """The complete message for a recipient who reads ``language`` (None: the list's)."""
        return self.for_language(language).compose(recipient)
