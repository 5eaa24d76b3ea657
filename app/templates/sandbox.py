"""The sandboxed Jinja2 environments that marketers' templates are compiled and rendered in.

A template is untrusted code: it runs in ``ImmutableSandboxedEnvironment`` (no attribute starting
with ``_``, no mutation of the context's dicts and lists), under ``StrictUndefined`` (a misspelt
variable fails when the template is saved, not in the middle of a campaign). HTML is autoescaped;
the subject and the text part are not (they are not HTML).

Every failure, at compile time or at render time, becomes :class:`TemplateInvalid` with the part
and the line: ``html line 3: unexpected '}'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.errors import InvalidInput

Part = Literal["subject", "html", "text"]

# What a template may use (API.md: per-recipient variables). Anything else is undefined and, under
# StrictUndefined, fails the sample render that every template goes through when it is saved.
ALLOWED_VARIABLES = frozenset(
    {"name", "email", "attributes", "list", "sender", "unsubscribe_url", "footer"}
)

# MH-4: a header value must never carry a line break (header injection) or a NUL.
_HEADER_BREAKERS = ("\r", "\n", "\0")


class TemplateInvalid(InvalidInput):
    """A template that does not compile or does not render: 422 with the part, line and reason."""


def _environment(*, html: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=html,
        # Templates are compiled once per campaign; Jinja's own cache would only hold them longer.
        cache_size=0,
        auto_reload=False,
    )


HTML_ENV = _environment(html=True)
TEXT_ENV = _environment(html=False)


def compile_part(part: Part, source: str) -> Template:
    """Compile one part of a template in the sandbox; a syntax error names its line."""
    if "\0" in source:
        raise TemplateInvalid(f"{part}: the template contains a NUL character.")
    env = HTML_ENV if part == "html" else TEXT_ENV
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"{part} line {exc.lineno}: {exc.message}") from None


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites the traceback so that template frames carry the template's own line numbers
    # under the file name "<template>"; the innermost such frame is where the error happened.
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_error(part: Part, exc: Exception) -> TemplateInvalid:
    """Describe a render-time failure (undefined variable, sandbox violation, bad arithmetic)."""
    line = _template_line(exc)
    where = f"{part} line {line}" if line is not None else part
    if isinstance(exc, SecurityError):
        reason = f"not allowed in a template ({exc})"
    else:
        reason = str(exc) or type(exc).__name__
    hint = ""
    if "has no attribute" in reason and "dict object" in reason:
        hint = (
            "; attributes differ from subscriber to subscriber: write "
            "{{ attributes.key | default('') }} or test with {% if attributes.key is defined %}"
        )
    elif "is undefined" in reason:
        hint = f"; the variables a template may use are: {', '.join(sorted(ALLOWED_VARIABLES))}"
    return TemplateInvalid(f"{where}: {reason}{hint}")


def render_part(part: Part, template: Template, context: Mapping[str, Any]) -> str:
    """Render one part; any failure becomes :class:`TemplateInvalid` (never a 500)."""
    try:
        return template.render(context)
    except Exception as exc:
        raise render_error(part, exc) from exc


def check_single_line(field: str, value: str) -> None:
    """MH-4: refuse CR, LF or NUL in a value that becomes (part of) a header."""
    if any(c in value for c in _HEADER_BREAKERS):
        raise TemplateInvalid(
            f"{field} must be a single line: it contains a line break or a NUL character."
        )
