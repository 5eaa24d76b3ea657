"""MH-1 without a browser: whatever a template does, the composed message writes the template's
content into a box of its own and the footer after it, in both parts; what the sample recipient
already shows to be hidden is refused when the template is saved.

(tests/mail/test_footer_browser.py opens the same messages in Chromium.)
"""

from __future__ import annotations

import re
import tracemalloc

import pytest
from selectolax.lexbor import LexborHTMLParser

from app.mail.compose import TemplateInvalid
from app.mail.html_document import _placeholder_after_less_than, scope_stylesheet
from tests.mail.factories import BASE_URL, REFUSAL, composer, parse, parts, recipient
from tests.mail.hiding import HIDING, HOSTILE_NAME, REFUSED_AT_SAVE

FOOTER_ITEMS = ("株式会社承諾", "東京都千代田区千代田1-1", "support@shodaku.example", REFUSAL["ja"])


def _body_children(html: str) -> list[str]:
    body = LexborHTMLParser(html).body
    assert body is not None
    children = []
    node = body.child
    while node is not None:
        if node.tag != "-text" or (node.text_content or "").strip():
            children.append(node)
        node = node.next
    return children


@pytest.mark.parametrize("name", list(HIDING))
def test_mh1_the_footer_follows_the_content_in_both_parts_whatever_the_template(
    name: str,
) -> None:
    html, attributes = HIDING[name]
    person = recipient(
        3,
        name=HOSTILE_NAME if name == "hostile recipient name" else "佐藤一郎",
        attributes=attributes,
    )
    text, body = parts(parse(composer(html=html).compose(person)))
    # Text part: the footer ends it, the refusal immediately before the recipient's own URL.
    assert text.rstrip().endswith(f"{REFUSAL['ja']}\n{person.unsubscribe_url}")
    for item in FOOTER_ITEMS:
        assert item in text
    # HTML part: the body holds Shodaku's container, then the footer block, and nothing else.
    container, footer = _body_children(body)
    assert container.attributes["id"].startswith("shodaku-")
    assert "contain:paint!important" in (container.attributes["style"] or "")
    footer_text = footer.text(deep=True)
    for item in FOOTER_ITEMS:
        assert item in footer_text
        assert item not in container.text(deep=True)
    links = [a.attributes.get("href") for a in footer.css("a")]
    assert person.unsubscribe_url in links
    # No element survives that a reader's client would act on or hide content with.
    tree = LexborHTMLParser(body)
    for tag in ("script", "template", "base", "link", "noscript", "textarea", "xmp", "plaintext"):
        assert not tree.css(tag) or tag == "textarea", tag
    assert [m.attributes.get("charset") or m.attributes.get("name") for m in tree.css("meta")] == [
        "utf-8",
        "viewport",
    ]
    assert not tree.css("[popover], [onerror], [onload]")
    # Every rule of every stylesheet is scoped to the container (or its body box).
    container_id = container.attributes["id"]
    for style in tree.css("style"):
        for selectors in re.findall(r"(?:^|[}{])([^{}@]+)\{", style.text()):
            for selector in selectors.split(","):
                assert selector.startswith(f"#{container_id}"), selector


@pytest.mark.parametrize(("html", "reason"), list(REFUSED_AT_SAVE.items()))
def test_mh1_a_template_leaving_markup_open_is_refused_with_the_reason(
    html: str, reason: str
) -> None:
    with pytest.raises(TemplateInvalid, match=re.escape(reason)):
        composer(html=html)


def test_mh1_control_characters_cannot_overwrite_the_text_footer() -> None:
    """A carriage return, an escape sequence or backspaces in the text part (the template's or a
    recipient's) could make a terminal draw over the footer: they are removed, and a run of
    blank lines cannot push the footer out of sight."""
    built = composer(
        subject="お知らせ",
        text="本文\r\x1b[2J\x1b[1A{{ name }}{{ attributes.plan | default('') }}\x08\x08"
        + "\n" * 500
        + "終わり",
    )
    person = recipient(name="佐藤\x1b[8m", attributes={"plan": "\r\x00"})
    text, _html = parts(parse(built.compose(person)))
    assert "\x1b" not in text
    assert "\x08" not in text
    assert "\r" not in text
    # (Jinja reads the template's own CR as a line break.)
    assert "本文\n[2J[1A佐藤[8m\n\n終わり\n\n" in text
    assert text.rstrip().endswith(recipient().unsubscribe_url)


def test_mh1_stylesheets_are_scoped_to_the_templates_own_content() -> None:
    css = (
        "body{margin:0} html body > table, :root p {color:red} .a, .b:not(.c, .d) {x:1}"
        "@media (max-width: 600px) { body table { width: 100% !important } }"
        "@import url(evil.css); @font-face{font-family:Arial} @layer l{p{x:1}}"
        "p{ body:has(&) {display:none} color:blue; content:'</style><p>'; bad:\"open"
    )
    assert scope_stylesheet(css, "c", "b") == (
        "#b{margin:0}#b > table,#b p{color:red}#c .a,#c .b:not(.c, .d){x:1}"
        "@media (max-width: 600px){#b table{width:100%!important}}"
        '#c p{color:blue;content:"\\3c /style>\\3c p>"}'
    )


def test_mh1_ordinary_newsletter_markup_is_kept() -> None:
    html = (
        "<!doctype html><html><head><title>{{ list.name }} 5月号</title><style>td{padding:8px}"
        '</style></head><body bgcolor="#f6f6f6" style="margin:0"><table width="100%" '
        'cellpadding="0"><tr><td style="color:#333;font-size:14px"><h1>{{ name }}様</h1>'
        '<a href="https://shop.example/{{ attributes.plan | default('
        ') }}?a=1&amp;b=2">ショップへ</a>'
        '<img src="https://shop.example/a.png" alt="" width="600"><br></td></tr></table>'
        "</body></html>"
    )
    _text, body = parts(parse(composer(html=html).compose(recipient(name="A&B"))))
    assert "<title>承諾ニュース 5月号</title>" in body
    assert (
        '<table width="100%" cellpadding="0"><tbody><tr><td style="color:#333;font-size:14px">'
        in body
    )
    assert "<h1>A&amp;B様</h1>" in body
    assert '<a href="https://shop.example/gold?a=1&amp;b=2">ショップへ</a>' in body
    assert '<img src="https://shop.example/a.png" alt="" width="600"><br>' in body
    assert re.search(
        r'<div id="shodaku-[0-9a-f]+-body" style="background-color:#f6f6f6;margin:0">', body
    )
    assert re.search(r"<style>#shodaku-[0-9a-f]+ td\{padding:8px\}</style>", body)


HOSTILE_VALUES = [
    "plain",
    "",
    "A&B <b>",
    '"><script>x</script>',
    "' onmouseover='x",
    "--><!--",
    "</textarea><textarea>",
    "red} * {display:none} p {x:1",
    "\ufdd0 0\ufdd1",
    "x y=z",
    "&amp;&lt;&#0;",
    "/title ",
]


@pytest.mark.parametrize(
    "html",
    [
        "<p>{{ name }}</p><p title='{{ v }}'>{{ v }}</p>",
        "<style>p{color:{{ v }}}</style><p>{{ name }}</p>",
        "<a href={{ v }}>{{ name }}</a>",
        "<{{ v }}>{{ name }}",
        "<title>{{ v }}</title><textarea>{{ v }}</textarea>{{ name }}",
        "<!-- {{ v }} --><p>{{ name | safe }}</p>",
        "{% autoescape false %}<p>{{ v }}</p>{% endautoescape %}",
        "{% macro m(x) %}<b>{{ x }}</b>{% endmacro %}{{ m(v) }}{{ name }}",
    ],
)
def test_mh1_a_structure_sanitised_once_gives_what_sanitising_each_message_gives(
    html: str,
) -> None:
    """The skeleton cache (one sanitisation per distinct structure) is exact: every message
    parses to the same tree as the document written from that recipient's own full HTML (the
    text differs only in how an escaped character is spelt: ``&#34;`` or ``&quot;``)."""
    built = composer(html="{% set v = attributes.v | default('') %}" + html)
    people = [
        recipient(n, name=v or "x", attributes={"v": v}) for n, v in enumerate(HOSTILE_VALUES)
    ]
    cached = [LexborHTMLParser(built.render(person).html).html for person in people]
    # The same composer with the skeletons switched off: each message sanitised in full.
    built._html._skeletons = False
    built._html._cache.clear()
    assert [LexborHTMLParser(built.render(person).html).html for person in people] == cached


def test_mh1_unsubscribe_url_of_each_recipient_in_the_html_footer() -> None:
    built = composer()
    for n in range(3):
        url = f"{BASE_URL}/unsubscribe/tok-{n}"
        _text, body = parts(parse(built.compose(recipient(n, unsubscribe_url=url))))
        footer = _body_children(body)[-1]
        assert [a.attributes.get("href") for a in footer.css("a")][-1] == url


def test_mh1_html_long_enough_for_gmail_to_clip_the_footer_is_refused() -> None:
    """Gmail shows the first 102 KB of a message's HTML and hides the rest behind a link: a
    padded template would hide the footer there. Refused on save, and for the one recipient
    whose own data would make it that long (the campaign's other messages go out)."""
    with pytest.raises(TemplateInvalid, match="Gmail"):
        composer(html="<p>本文</p>" + "<!-- padding -->" * 7000)
    built = composer(html="<p>{{ attributes.bio | default('') }}</p>")
    assert built.compose(recipient(2, attributes={"bio": "短い"}))
    with pytest.raises(TemplateInvalid, match="Gmail"):
        built.compose(recipient(3, attributes={"bio": "x" * 100_000}))


def test_mh1_nesting_that_would_stall_the_parser_is_refused() -> None:
    """Nesting n elements deep costs an HTML parser n^2 (200,000 nested <div> take minutes):
    refused before anything is parsed."""
    with pytest.raises(TemplateInvalid, match="nested"):
        composer(html="<div>" * 600 + "本文")
    assert composer(html="<div>" * 100 + "本文" + "</div>" * 100).compose(recipient())


def test_ds6_per_recipient_html_output_is_weighed_like_every_other_part() -> None:
    """DS-6: the HTML part renders through its own environment (placeholders for the footer's
    protection); it still weighs every printed value before printing it, so a list holding one
    long string many times is refused for that recipient before its text is built in memory."""
    heavy = "{% set s = name * 1 %}{{ [" + ", ".join(["s"] * 100) + "] }}"
    built = composer(html="<p>" + heavy + "</p>")
    hostile = recipient(name="x" * 200_000)  # printed whole, the list is 20 MB of text
    tracemalloc.start()
    try:
        with pytest.raises(TemplateInvalid):
            built.compose(hostile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize(
    ("skeleton", "flagged"),
    [
        ("<p>\ufdd0 0\ufdd1</p>", False),
        ("<\ufdd0 0\ufdd1", True),
        ("</\ufdd0 0\ufdd1>", True),
        ("<a<b\ufdd0 0\ufdd1", True),
        ("< \ufdd0 0\ufdd1", False),
        ("<a>\ufdd0 0\ufdd1", False),
        ("<" * 200_000 + "x", False),  # one pass: a regex trying every '<' never came back
    ],
)
def test_ds6_placeholder_after_less_than_is_found_in_one_pass(skeleton: str, flagged: bool) -> None:
    """A recipient value right after '<' could make a tag: that skeleton is not trusted, and
    the check costs one pass over the skeleton, whatever it holds (MH-1, DS-6)."""
    assert _placeholder_after_less_than(skeleton) is flagged


@pytest.mark.parametrize("filler", ["\u200b", "\u2800", "\u3000", "\u00a0", "\u3164", "\ufeff"])
def test_mh1_lines_of_invisible_characters_cannot_push_the_text_footer_away(filler: str) -> None:
    """Found in review: 5,000 lines holding only a zero-width space (or a Braille blank...) put
    the text footer on line 5,003; such lines count as blank and their runs are shortened."""
    built = composer(text="今月のおすすめ" + (filler + "\n") * 5000 + "以上です。")
    text, _ = parts(parse(built.compose(recipient())))
    assert text.index(REFUSAL["ja"]) < 1000
    assert text.count("\n") < 40
