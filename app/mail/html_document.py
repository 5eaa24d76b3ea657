"""The HTML part of a campaign message: Shodaku writes the document, the template only fills a
box in it, and the legal footer stands after the box where nothing of the template reaches (MH-1).

A template is hostile HTML, and so is every recipient's data in it. Checking the rendered
string for forbidden patterns (an open comment, ``display:none``...) can never be complete, so
the footer's visibility does not depend on what the template contains:

1. The rendered HTML is parsed by a real HTML5 parser (lexbor, through selectolax) and written
   back from the tree by :func:`_write_content`: only the body's content, balanced, every text
   and attribute value escaped. Comments, ``<script>``, ``<template>``, ``<base>``, ``<link>``,
   ``<meta>``, ``<noscript>``, frames and plugins are dropped; ``<xmp>`` and ``<plaintext>``
   become ``<pre>``; the ``popover`` and event-handler attributes are dropped. Nothing left open
   by the template (a comment, a ``<textarea>``, a tag, an attribute) survives the parse, so
   nothing can swallow what Shodaku writes after it.
2. That content goes into a container of Shodaku's own (a random id per campaign) whose inline
   ``!important`` styles confine it: ``contain:paint`` and ``overflow:hidden`` clip its painting
   to its own box (fixed-position descendants included), ``isolation:isolate`` keeps its
   stacking contexts inside, ``max-height`` keeps it from pushing the footer past what a
   browser can lay out.
3. Every stylesheet of the template (``<style>`` anywhere, ``<svg><style>`` included) is parsed
   by tinycss2 and written back token by token by :func:`scope_stylesheet`: every selector is
   prefixed with ``#<container> `` so that it can match only the container's descendants;
   ``html``, ``body`` and ``:root`` map onto an inner box standing for the template's body;
   at-rules other than ``@media`` and ``@supports`` are dropped (``@import``, ``@font-face``,
   ``@layer``, ``@scope``...), and so are nested rules (``:has(&)`` could select an ancestor).
4. The footer follows the container in a block of its own with explicit inline colours, size
   and opacity; no rule of the template can select it, and it inherits only from the body,
   which no rule of the template can select either.
5. The written document is parsed once more and must have exactly the container and the footer
   block as the body's children, or the message is refused.

Speed (the composition budget of docs/architecture.md): parsing and writing every recipient's
HTML costs more than the whole message did. :class:`HtmlPart` renders the template with every
``{{ }}`` output replaced by a placeholder (noncharacters U+FDD0/U+FDD1, stripped from every value),
records the escaped values, and sanitises each distinct skeleton once (a bounded LRU). A skeleton
is used only when every placeholder came out exactly once, in escaped text or a quoted
attribute value, and none followed a ``<``: there an escaped value (no ``<``, ``>`` or quotes)
reads exactly as the placeholder does to the parser, so substituting the values into the
sanitised skeleton gives what sanitising the full HTML would. Anything else (a value in a
``<style>``, a tag name, an unquoted attribute, a comment; a value holding markup; a template
that captures output in ``{% set %}`` blocks or macros) is sanitised in full for that recipient.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import tinycss2
import tinycss2.ast
from jinja2 import StrictUndefined, Template, nodes, pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape
from selectolax.lexbor import LexborHTMLParser, LexborNode
from tinycss2.serializer import serialize_identifier, serialize_string_value, serialize_url

from app.mail.sandbox import (
    TemplateInvalid,
    TemplateSandbox,
    compile_part,
    render_part,
    weigh_output,
)

__all__ = [
    "HtmlPart",
    "TemplateInvalid",
    "declare_charset",
    "scope_stylesheet",
    "strip_sentinels",
]

# --- the document Shodaku writes -------------------------------------------------------------

# No rule of the template can select the container (see scope_stylesheet); these are
# !important as well, so that even a rule that did could not undo them.
_CONTAINER_STYLE: Final = ";".join(
    f"{rule}!important"
    for rule in (
        "display:block",
        "position:relative",
        "overflow:hidden",
        "contain:paint",
        "isolation:isolate",
        "margin:0",
        "padding:0",
        "border:0",
        # Chromium's layout stops at about 33 million pixels: a taller template would push the
        # footer beyond what can be drawn. 100,000 px is some fifty screens of newsletter.
        "max-height:100000px",
        "opacity:1",
        # An identity transform, not none: a transformed box is the containing block of its
        # fixed-position descendants, so mail readers that ignore `contain` clip them too.
        "transform:translate(0,0)",
        "filter:none",
        "clip-path:none",
    )
)
# The footer block inherits from the body alone, and no rule of the template can select either;
# its inline styles are !important all the same, a second line should a selector slip through.
# Japanese fonts first, then the generic family; the template's @font-face rules are dropped, so
# none of these names can be redefined by it.
_FOOTER_BLOCK_STYLE: Final = ";".join(
    f"{declaration}!important"
    for declaration in (
        "display:block",
        "visibility:visible",
        "opacity:1",
        "position:static",
        "transform:none",
        "filter:none",
        "clip-path:none",
        "margin:0",
        "padding:16px",
        "background:#ffffff",
        "color:#222222",
        "font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN','Noto Sans JP',"
        "'Noto Sans CJK JP',Meiryo,sans-serif",
        "font-size:14px",
        "line-height:1.6",
        "overflow-wrap:anywhere",
    )
)
_BODY_STYLE: Final = "margin:0;padding:0;background:#ffffff;color:#222222"
_END: Final = "</div></body></html>"
# The document's own charset declaration, the first <meta> of every document written here (the
# template's own <meta> elements are dropped, and its text is escaped, so no other can precede).
_META_UTF8: Final = '<meta charset="utf-8">'
_PROBE_URL: Final = "https://example.invalid/unsubscribe"

# --- writing the template's content back from the parsed tree ---------------------------------

_DROPPED: Final = frozenset(
    {
        "script",
        "template",
        "base",
        "link",
        "meta",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "param",
        "noembed",
        "noframes",
        "portal",
        "fencedframe",
        "title",
        "head",
    }
)
# Raw-text elements: their text is shown as preformatted text, never as raw text.
_AS_PRE: Final = frozenset({"xmp", "plaintext"})
_VOID: Final = frozenset(
    {
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
# Attributes that put an element in the top layer (out of any container) or run script.
_DROPPED_ATTRIBUTES: Final = frozenset(
    {
        "popover",
        "popovertarget",
        "popovertargetaction",
        "command",
        "commandfor",
        "interestfor",
        "autofocus",
        "srcdoc",
    }
)
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*")
_SIMPLE_COLOUR = re.compile(r"#?[A-Za-z0-9]{1,20}")

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})

# --- placeholders for the values of {{ }} outputs -------------------------------------------

_OPEN: Final = "\ufdd0"
_CLOSE: Final = "\ufdd1"
# The space makes a placeholder end an unquoted attribute value, as a value with a space would:
# such a template is then sanitised per recipient instead of trusted.
_PLACEHOLDER = re.compile(f"{_OPEN} (\\d+){_CLOSE}")
_NO_SENTINELS = str.maketrans("", "", _OPEN + _CLOSE)
# A value that could end a quoted attribute value or start markup is part of the structure.
_NOT_TEXT = re.compile("[<>\"']")
# A placeholder right after '<' (or '</name') reads as text where the value could make a tag.
# Found by one linear pass over '<', '>', whitespace and placeholder openings (a regex that
# tried every '<' was quadratic on a skeleton of many '<' and no placeholder: DS-6).
_LESS_THAN_SCAN = re.compile(f"[<>\\t\\n\\f\\r {_OPEN}]")


def declare_charset(document: str, charset: str) -> str:
    """A document written here, its ``<meta charset>`` naming ``charset`` instead of UTF-8, for
    a part sent in that charset: a browser must read the bytes as the mail says they are."""
    return document.replace(_META_UTF8, f'<meta charset="{charset}">', 1)


def _placeholder_after_less_than(skeleton: str) -> bool:
    opened = False
    for match in _LESS_THAN_SCAN.finditer(skeleton):
        char = match.group()
        if char == "<":
            opened = True
        elif char == _OPEN:
            if opened:
                return True
        else:
            opened = False
    return False


# Jinja nodes that capture output into a value a template can then inspect or change.
_CAPTURING = (nodes.AssignBlock, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Block)

_VALUES: ContextVar[list[str] | None] = ContextVar("shodaku_html_values", default=None)


def strip_sentinels(value: str) -> str:
    """The characters Shodaku uses as placeholders, removed (they have no use in text)."""
    return value.translate(_NO_SENTINELS)


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Markup:
    """Every ``{{ }}`` output of the HTML part: a placeholder for escaped text, recorded. The
    sandbox weighs the value first, as it does for every other part (DS-6)."""
    value = weigh_output(value)
    text = str(escape(value) if eval_ctx.autoescape else value).translate(_NO_SENTINELS)
    values = _VALUES.get()
    # Markup: ``text`` is what Jinja would have written (already escaped under autoescape).
    if values is None or not text or _NOT_TEXT.search(text):
        return Markup(text)  # noqa: S704
    values.append(text)
    return Markup(f"{_OPEN} {len(values) - 1}{_CLOSE}")  # noqa: S704


_SKELETON_ENV = TemplateSandbox(
    undefined=StrictUndefined,
    autoescape=True,
    cache_size=0,
    auto_reload=False,
    finalize=_finalize,
)


def _expand(skeleton: str, values: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[int(m[1])], skeleton)


# --- stylesheets ------------------------------------------------------------------------------

_MAX_AT_RULE_DEPTH = 8
_BAD_LITERALS = frozenset({";", "{", "}", "\\"})


def _clean_tokens(tokens: list[Any], *, prelude: bool) -> list[Any] | None:
    """The tokens with strings and URLs re-quoted (an unclosed one is closed), or None when they
    hold a parse error or what could end a rule or a block early."""
    out: list[Any] = []
    ast = tinycss2.ast
    for token in tokens:
        kind = token.type
        if kind == "comment":
            continue
        if kind == "error":
            return None
        if kind == "literal" and (
            token.value == "\\" or (prelude and token.value in _BAD_LITERALS)
        ):
            return None
        if kind == "string":
            token = ast.StringToken(
                token.source_line,
                token.source_column,
                token.value,
                '"' + serialize_string_value(token.value) + '"',
            )
        elif kind == "url":
            token = ast.URLToken(
                token.source_line,
                token.source_column,
                token.value,
                "url(" + serialize_url(token.value) + ")",
            )
        elif kind in ("() block", "[] block", "{} block"):
            if prelude and kind == "{} block":
                return None
            inner = _clean_tokens(token.content, prelude=prelude)
            if inner is None:
                return None
            token = type(token)(token.source_line, token.source_column, inner)
        elif kind == "function":
            arguments = _clean_tokens(token.arguments, prelude=prelude)
            if arguments is None:
                return None
            token = ast.FunctionBlock(token.source_line, token.source_column, token.name, arguments)
        out.append(token)
    return out


def _is_space(token: Any) -> bool:
    return bool(token.type == "whitespace")


_COMBINATORS: Final = frozenset({">", "+", "~", "|"})


def _compound_end(tokens: list[Any], start: int) -> int:
    end = start
    while end < len(tokens):
        token = tokens[end]
        if _is_space(token) or (token.type == "literal" and token.value in (">", "+", "~")):
            break
        end += 1
    return end


def _root_compound(tokens: list[Any], start: int, names: tuple[str, ...]) -> int | None:
    """Where the compound at ``start`` ends when it is exactly one of html, body, :root."""
    end = _compound_end(tokens, start)
    compound = tokens[start:end]
    if len(compound) == 1 and compound[0].type == "ident":
        return end if compound[0].lower_value in names else None
    if (
        len(compound) == 2
        and compound[0].type == "literal"
        and compound[0].value == ":"
        and compound[1].type == "ident"
        and compound[1].lower_value == "root"
        and "root" in names
    ):
        return end
    return None


def _scope_selector(tokens: list[Any], container: str, body: str) -> str:
    """One selector, able to match only descendants of the container (MH-1).

    ``html``, ``body`` and ``:root`` leading a selector stand for the template's body box
    (``body{margin:0}`` keeps working on the template's own content); anywhere else they match
    nothing, as every other selector is put under ``#container ``.
    """
    end = _root_compound(tokens, 0, ("html", "body", "root"))
    if end is not None:
        # html body p, html > body p, :root body p: the second compound is the same box.
        look = end
        while look < len(tokens) and (
            _is_space(tokens[look]) or (tokens[look].type, tokens[look].value) == ("literal", ">")
        ):
            look += 1
        if look < len(tokens):
            second = _root_compound(tokens, look, ("body",))
            if second is not None:
                end = second
        return f"#{body}" + str(tinycss2.serialize(tokens[end:]))
    return f"#{container} " + str(tinycss2.serialize(tokens))


def _scope_prelude(prelude: list[Any], container: str, body: str) -> str | None:
    cleaned = _clean_tokens(prelude, prelude=True)
    if cleaned is None:
        return None
    selectors: list[list[Any]] = [[]]
    for token in cleaned:
        if token.type == "literal" and token.value == ",":
            selectors.append([])
        else:
            selectors[-1].append(token)
    scoped: list[str] = []
    for selector in selectors:
        while selector and _is_space(selector[0]):
            selector.pop(0)
        while selector and _is_space(selector[-1]):
            selector.pop()
        # A selector that starts with a combinator (``~ div``, ``+ p``, ``> a``, ``|| td``)
        # would, once put under ``#container ``, reach the container's siblings: the footer
        # (MH-1). It is no valid top-level selector anyway: dropped.
        if selector and not (selector[0].type == "literal" and selector[0].value in _COMBINATORS):
            scoped.append(_scope_selector(selector, container, body))
    return ",".join(scoped) or None


def _declarations(content: list[Any]) -> str:
    """Declarations only: nested rules (CSS nesting) are dropped, ``:has(&)`` could select an
    ancestor of the container."""
    written: list[str] = []
    for item in tinycss2.parse_blocks_contents(content, skip_whitespace=True, skip_comments=True):
        if item.type != "declaration":
            continue
        value = _clean_tokens(item.value, prelude=False)
        if value is None:
            continue
        important = "!important" if item.important else ""
        text = tinycss2.serialize(value).strip()
        written.append(f"{serialize_identifier(item.name)}:{text}{important}")
    return ";".join(written)


def _scope_rules(rules: list[Any], container: str, body: str, out: list[str], depth: int) -> None:
    for rule in rules:
        if rule.type == "qualified-rule":
            selectors = _scope_prelude(rule.prelude, container, body)
            if selectors is not None:
                out.append(f"{selectors}{{{_declarations(rule.content)}}}")
        elif (
            rule.type == "at-rule"
            and rule.lower_at_keyword in ("media", "supports")
            and rule.content is not None
            and depth < _MAX_AT_RULE_DEPTH
        ):
            condition = _clean_tokens(rule.prelude, prelude=True)
            if condition is None:
                continue
            inner: list[str] = []
            nested = tinycss2.parse_rule_list(
                rule.content, skip_whitespace=True, skip_comments=True
            )
            _scope_rules(nested, container, body, inner, depth + 1)
            if inner:
                out.append(
                    f"@{rule.lower_at_keyword} {tinycss2.serialize(condition).strip()}"
                    f"{{{''.join(inner)}}}"
                )
        # Every other at-rule (@import, @font-face, @layer, @scope, @keyframes, @page...) and
        # every parse error is dropped.


def scope_stylesheet(css: str, container: str, body: str, media: str | None = None) -> str:
    """A template's stylesheet rewritten so that it styles only the template's content (MH-1).

    Written from tokens: strings and blocks are closed, so nothing unbalanced reaches the
    document; ``<`` is written as a CSS escape, so the sheet cannot end its ``<style>``.
    """
    out: list[str] = []
    rules = tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True)
    _scope_rules(rules, container, body, out, 0)
    sheet = "".join(out)
    if media is not None and sheet:
        condition = _clean_tokens(tinycss2.parse_component_value_list(media), prelude=True)
        if condition is None:
            return ""
        text = tinycss2.serialize(condition).strip()
        if text and text.lower() != "all":
            sheet = f"@media {text}{{{sheet}}}"
    return sheet.replace("<", "\\3c ")


# --- the parsed tree, written back --------------------------------------------------------------


@dataclass(slots=True)
class _Written:
    title: str
    sheets: list[str]
    body_style: str
    content: str
    # Indices of the placeholders found in escaped text or quoted attribute values.
    placeholders: list[int]


def _note_placeholders(value: str, found: list[int]) -> None:
    if _OPEN in value:
        found.extend(int(i) for i in _PLACEHOLDER.findall(value))


def _start_tag(name: str, attributes: Mapping[str, str | None], found: list[int]) -> str:
    out = [f"<{name}"]
    for key, value in attributes.items():
        lower = key.lower()
        if (
            lower.startswith("on")
            or lower in _DROPPED_ATTRIBUTES
            or not _ATTRIBUTE_NAME.fullmatch(key)
        ):
            continue
        if value is None:
            out.append(f" {key}")
        else:
            _note_placeholders(value, found)
            out.append(f' {key}="{value.translate(_ATTRIBUTE_ESCAPES)}"')
    out.append(">")
    return "".join(out)


def _write_content(body: LexborNode, sheets: list[str], found: list[int]) -> str:
    """The body's content written back balanced and escaped; style sheets collected apart.

    Iterative, so that deeply nested hostile HTML cannot exhaust the interpreter's stack.
    """
    out: list[str] = []
    stack: list[tuple[LexborNode | None, str]] = []
    node = body.child
    while True:
        while node is None:
            if not stack:
                return "".join(out)
            node, end_tag = stack.pop()
            out.append(end_tag)
        tag = node.tag
        following = node.next
        if tag == "-text":
            text = node.text_content or ""
            _note_placeholders(text, found)
            out.append(text.translate(_TEXT_ESCAPES))
        elif not node.is_element_node or tag is None or tag in _DROPPED:
            pass  # comments, doctypes and what must not reach a reader
        elif tag == "style":
            sheets.append(node.text(deep=True))
        elif tag in _AS_PRE:
            # Raw text in the template: shown as text, and never trusted with a placeholder.
            out.append(f"<pre>{node.text(deep=True).translate(_TEXT_ESCAPES)}</pre>")
        elif not _TAG_NAME.fullmatch(tag):
            stack.append((following, ""))
            node = node.child
            continue
        else:
            out.append(_start_tag(tag, node.attributes, found))
            if tag not in _VOID:
                stack.append((following, f"</{tag}>"))
                node = node.child
                continue
        node = following


# Gmail shows only the first 102 KB of a message's HTML and hides the rest, the footer with it,
# behind a link: a template longer than that would hide the footer as surely as display:none.
# The bound also keeps the parse cheap.
MAX_HTML_CHARS: Final = 100_000
# An HTML parser checks the stack of open elements at each start tag: nesting n deep costs n^2
# (200,000 nested <div> take minutes). Browsers stop nesting at 512.
MAX_NESTING: Final = 512
_TAG = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*)")
# Elements that need no end tag: they never make the nesting deeper for long.
_ENDS_ITSELF: Final = _VOID | frozenset(
    {
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "tbody",
        "thead",
        "tfoot",
        "colgroup",
        "caption",
        "option",
        "optgroup",
        "rb",
        "rt",
        "rp",
        "rtc",
        "html",
        "head",
        "body",
    }
)


def _too_long(size: int) -> TemplateInvalid:
    return TemplateInvalid(
        f"html: the rendered HTML is {size:,} characters, over {MAX_HTML_CHARS:,}; mail "
        "readers such as Gmail cut longer messages short and hide the legal footer. "
        "Make it shorter."
    )


def _check_size(html: str) -> None:
    """MH-1: refuse (for this recipient, or on save) HTML a reader would not see to its end, or
    that would take the parser seconds; counted before anything is parsed."""
    if len(html) > MAX_HTML_CHARS:
        raise _too_long(len(html))
    depth = deepest = 0
    for match in _TAG.finditer(html):
        if match[2].lower() in _ENDS_ITSELF:
            continue
        if match[1]:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
    if deepest > MAX_NESTING:
        raise TemplateInvalid(
            f"html: elements are nested (or left open) more than {MAX_NESTING} deep; close them."
        )


def _write(html: str) -> _Written:
    _check_size(html)
    tree = LexborHTMLParser(html)
    found: list[int] = []
    sheets: list[str] = []
    title = ""
    head = tree.head
    if head is not None:
        for element in head.iter():
            if element.tag == "style":
                sheets.append(element.text(deep=True))
            elif element.tag == "title" and not title:
                title = element.text(deep=True)
                _note_placeholders(title, found)
    body = tree.body
    body_style = ""
    content = ""
    if body is not None:
        attributes = body.attributes
        style = attributes.get("style")
        colour = attributes.get("bgcolor")
        parts = []
        if colour and _SIMPLE_COLOUR.fullmatch(colour):
            parts.append(f"background-color:{colour}")
        if style:
            _note_placeholders(style, found)
            parts.append(style)
        body_style = ";".join(parts)
        content = _write_content(body, sheets, found)
    return _Written(title, sheets, body_style, content, found)


def _hidden_ancestor(node: LexborNode) -> str | None:
    parent = node.parent
    while parent is not None:
        if parent.tag in _HIDING:
            return f"inside <{parent.tag}>"
        parent = parent.parent
    return None


# Elements whose text a reader never sees as part of the page.
_HIDING: Final = frozenset(
    {
        "head",
        "title",
        "textarea",
        "style",
        "script",
        "xmp",
        "noscript",
        "noembed",
        "noframes",
        "iframe",
        "plaintext",
        "template",
        "select",
        "datalist",
        "option",
        "optgroup",
        "object",
        "svg",
        "math",
    }
)


def _where(html: str, marker: str) -> str | None:
    """Where the parser put ``marker`` when it is not plain text of the body: a reason to give,
    or None when a reader sees it."""
    tree = LexborHTMLParser(html)
    for node in tree.root.traverse(include_text=True) if tree.root is not None else ():
        if node.is_comment_node:
            if marker in (node.comment_content or ""):
                return "inside an HTML comment"
        elif node.tag == "-text":
            if marker in (node.text_content or ""):
                return _hidden_ancestor(node)
        elif marker in (node.tag or "") or any(
            marker in key or marker in (value or "") for key, value in node.attributes.items()
        ):
            return "inside an HTML tag"
    # The parser dropped it: a tag still open at the end of the input is discarded whole.
    before = html[: html.rfind(marker)]
    if before.rfind("<") > before.rfind(">"):
        return "inside an HTML tag"
    return "inside markup a mail reader never displays (such as <template>)"


class HtmlPart:
    """The HTML part of one campaign: the template compiled once, each recipient's document
    written as described in this module's docstring (MH-1)."""

    __slots__ = (
        "_cache",
        "_cache_chars",
        "_container",
        "_footer",
        "_footer_text",
        "_inner",
        "_language",
        "_skeletons",
        "_template",
    )

    _CACHE_CHARS = 4_000_000

    def __init__(self, source: str, *, language: str, footer: Callable[[str], str]) -> None:
        source = strip_sentinels(source)
        compile_part("html", source)  # the sandbox's own checks and error messages
        self._template: Template = _SKELETON_ENV.from_string(source)
        self._skeletons = not any(True for _ in _SKELETON_ENV.parse(source).find_all(_CAPTURING))
        token = secrets.token_hex(8)
        self._container = f"shodaku-{token}"
        self._inner = f"shodaku-{token}-body"
        self._language = language
        self._footer = footer
        empty = self._assemble(_Written("", [], "", "", []))
        parsed = LexborHTMLParser(empty + footer(_PROBE_URL) + _END).body
        last = parsed.last_child if parsed is not None else None
        self._footer_text = last.text(deep=True).strip() if last is not None else ""
        self._cache: OrderedDict[str, tuple[list[str], list[int]] | None] = OrderedDict()
        self._cache_chars = 0

    # -- per recipient ---------------------------------------------------------------------

    def render(self, context: Mapping[str, Any], unsubscribe_url: str) -> str:
        """The complete HTML document for one recipient, the footer visible after the content."""
        return self.content(context) + self._footer(unsubscribe_url) + _END

    def content(self, context: Mapping[str, Any]) -> str:
        """The document for one recipient up to the footer: Shodaku's head and the template's
        content in its box, without the footer's own markup and text."""
        values: list[str] = []
        token = _VALUES.set(values if self._skeletons else None)
        try:
            skeleton = render_part("html", self._template, context)
        finally:
            _VALUES.reset(token)
        if (size := len(skeleton) + sum(map(len, values))) > MAX_HTML_CHARS:
            raise _too_long(size)  # a recipient's own data can make it long (MH-1)
        if not values:
            head = self._sanitised(skeleton)
        else:
            if skeleton in self._cache:  # a str caches its hash: the second look-up is cheap
                cached = self._cache[skeleton]
                self._cache.move_to_end(skeleton)
            else:
                cached = self._prepare(skeleton, len(values))
            if cached is None:
                head = self._document(_expand(skeleton, values))
            else:
                pieces, order = cached
                out = [pieces[0]]
                for k, index in enumerate(order, 1):
                    out.append(values[index])
                    out.append(pieces[k])
                head = "".join(out)
        return head

    def plain(self, context: Mapping[str, Any]) -> str:
        """The template's own rendering, as Jinja gives it (for converting to text)."""
        return render_part("html", self._template, context)

    def _sanitised(self, html: str) -> str:
        if html in self._cache:
            cached = self._cache[html]
            self._cache.move_to_end(html)
            if cached is not None:
                return cached[0][0]
        document = self._document(html)
        self._remember(html, ([document], []))
        return document

    def _prepare(self, skeleton: str, count: int) -> tuple[list[str], list[int]] | None:
        """Sanitise a skeleton once; None when its placeholders cannot be trusted."""
        entry: tuple[list[str], list[int]] | None = None
        if not _placeholder_after_less_than(skeleton):
            written = _write(skeleton)
            document = self._assemble(written)
            if sorted(written.placeholders) == list(range(count)) and (
                document.count(_OPEN) == count
            ):
                self._verify(document)
                split = _PLACEHOLDER.split(document)
                entry = (split[0::2], [int(i) for i in split[1::2]])
        self._remember(skeleton, entry)
        return entry

    def _remember(self, key: str, entry: tuple[list[str], list[int]] | None) -> None:
        size = len(key) + (sum(map(len, entry[0])) if entry else 0)
        if size > self._CACHE_CHARS // 4:
            return
        self._cache[key] = entry
        self._cache_chars += size
        while self._cache_chars > self._CACHE_CHARS:
            old_key, old = self._cache.popitem(last=False)
            self._cache_chars -= len(old_key) + (sum(map(len, old[0])) if old else 0)

    def _document(self, html: str) -> str:
        document = self._assemble(_write(html))
        self._verify(document)
        return document

    def _assemble(self, written: _Written) -> str:
        """Everything of the document before the footer's own markup."""
        css = "".join(scope_stylesheet(s, self._container, self._inner) for s in written.sheets)
        title = f"<title>{written.title.translate(_TEXT_ESCAPES)}</title>" if written.title else ""
        style = f"<style>{css}</style>" if css else ""
        body_style = (
            f' style="{written.body_style.translate(_ATTRIBUTE_ESCAPES)}"'
            if written.body_style
            else ""
        )
        return (
            f'<!doctype html>\n<html lang="{self._language}" style="background:#ffffff">'
            f"<head>{_META_UTF8}"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{title}{style}</head>\n"
            f'<body style="{_BODY_STYLE}">'
            f'<div id="{self._container}" style="{_CONTAINER_STYLE}">'
            f'<div id="{self._inner}"{body_style}>{written.content}</div></div>\n'
            f'<div style="{_FOOTER_BLOCK_STYLE}">'
        )

    def _verify(self, document: str) -> None:
        """MH-1: the written document, parsed again, has the container and then the footer as
        the body's only children; otherwise the message is refused, never sent."""
        tree = LexborHTMLParser(document + self._footer(_PROBE_URL) + _END)
        body = tree.body
        children = []
        node = body.child if body is not None else None
        while node is not None:
            if node.tag != "-text" or (node.text_content or "").strip():
                children.append(node)
            node = node.next
        if (
            len(children) != 2
            or children[0].attributes.get("id") != self._container
            or children[1].tag != "div"
            or children[1].text(deep=True).strip() != self._footer_text
        ):
            raise TemplateInvalid(
                "html: the template's HTML could not be written so that the legal footer "
                "stays visible; simplify its markup."
            )

    # -- when the template is saved ----------------------------------------------------------

    def check_sample(self, context: Mapping[str, Any], footer_marker: str) -> None:
        """MH-1: refuse, with the reason, what is visibly wrong on the sample recipient: a
        ``{{ footer }}`` where the parser would not show it, or a comment or element left open
        that would swallow what follows. Recipients are never trusted to render the same way:
        :meth:`render` makes their messages safe whatever the template does."""
        sample = dict(context)
        sample["footer"] = footer_marker  # letters and digits: the same escaped or not
        html = render_part("html", self._template, sample)
        _check_size(html)
        if footer_marker in html and (where := _where(html, footer_marker)):
            raise TemplateInvalid(
                f"html: {{{{ footer }}}} is placed {where}, where recipients would not see it "
                "(the legal footer is always shown after the content; remove the marker or "
                "move it into the body)."
            )
        end = f"shodakuend{secrets.token_hex(8)}"
        if where := _where(html + end, end):
            raise TemplateInvalid(
                f"html: the template ends {where}: an element or comment left open would "
                "swallow what follows it. Close it."
            )
        self.render(context, _PROBE_URL)
