"""The sandboxed Jinja2 environments that marketers' templates are compiled and rendered in.

A template is untrusted code: it runs in ``ImmutableSandboxedEnvironment`` (no attribute starting
with ``_``, no mutation of the context's dicts and lists), under ``StrictUndefined`` (a misspelt
variable fails when the template is saved, not in the middle of a campaign). HTML is autoescaped;
the subject and the text part are not (they are not HTML).

Every failure, at compile time or at render time, becomes :class:`TemplateInvalid` with the part
and the line: ``html line 3: unexpected '}'``.

The sandbox stops a template from reaching Python's internals, not from running long or building
huge strings: ``{% for a in range(99999) %}{% for b in range(99999) %}`` or
``{{ 'x' * 10**10 }}`` would hold the process (a save, a preview, a campaign preflight, every
message of a send) for hours or exhaust its memory. So each render runs under a budget: loop
iterations, the size of every string built, a wall-clock deadline; sizes and counts that would
allocate more (``*``, ``**``, format widths, filter widths and counts) are checked before the
allocation. Going over any of them is a :class:`RenderLimitExceeded`, hence a 422 on save.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context, new_context
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


# --- the render budget ----------------------------------------------------------------------

# A newsletter loops over a handful of items; these bound what one render of one part may cost.
MAX_LOOP_ITERATIONS = 100_000
# Every string a render builds (an operation's result, a filter's, the output of a loop, a macro
# or the whole part): far above any mail (Gmail clips a message at 102 KB).
MAX_STRING_CHARS = 2_000_000
# Widths and counts given to filters (center, indent, wordwrap, batch, slice...).
MAX_COUNT_ARGUMENT = 10_000
# Integers built with ** (a 10,000-bit integer has about 3,000 digits).
MAX_POWER_BITS = 10_000
RENDER_SECONDS = 5.0

# Format specifications: a width or precision of five digits or more, or one taken from the
# arguments (*), as in '%099999999d' or '{:>99999999}'.
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(\*|\d{5,})|%[-#0 +]*\d*\.(\*|\d{5,})|\{[^{}]*:[^{}]*\d{5,}")
# str methods a template may call; the others (center, ljust, zfill, replace, expandtabs,
# format_map, encode, join...) allocate by a count or a product the budget cannot see coming.
_STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "format",
        "isalnum",
        "isalpha",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    }
)
_LOOP_GUARD = "shodaku_loop_guard"


class RenderLimitExceeded(TemplateRuntimeError):
    """A render that would run too long or build too much: refused, never left to run."""


@dataclass
class _Budget:
    iterations_left: int
    deadline: float

    @classmethod
    def start(cls) -> _Budget:
        return cls(MAX_LOOP_ITERATIONS, time.monotonic() + RENDER_SECONDS)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"the template takes more than {RENDER_SECONDS:g} seconds to render"
            )

    def iterate(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise RenderLimitExceeded(
                f"the template's loops run more than {MAX_LOOP_ITERATIONS:,} times"
            )
        self.check_time()


_BUDGET: ContextVar[_Budget | None] = ContextVar("shodaku_render_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # rendered outside Template.render (a stream): a budget of its own
        budget = _Budget.start()
        _BUDGET.set(budget)
    return budget


def _too_large() -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"the template builds a value of more than {MAX_STRING_CHARS:,} characters or items"
    )


def _check_size(value: object) -> None:
    if isinstance(value, str | list | tuple) and len(value) > MAX_STRING_CHARS:
        raise _too_large()


def _check_format(spec: object) -> None:
    if isinstance(spec, str) and _WIDE_FORMAT.search(spec):
        raise RenderLimitExceeded(
            "a format width or precision of five digits or more (or *) is not allowed"
        )


def _loop_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    """Wrapped around the iterable of every ``{% for %}``: each iteration spends the budget."""
    budget = _budget()
    for item in iterable:
        budget.iterate()
        yield item


def _bounded_concat(pieces: Iterable[str]) -> str:
    """Jinja joins every output (a part, a loop body, a macro, a block) with this: the sum of
    the pieces is checked before the join allocates it."""
    collected: list[str] = []
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_STRING_CHARS:
            raise RenderLimitExceeded(
                f"the template renders more than {MAX_STRING_CHARS:,} characters"
            )
        collected.append(piece)
    return "".join(collected)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose counts are bounded before it runs and whose result is checked after."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().check_time()
        values = [a for a in args if not isinstance(a, Context)]
        # The first value is what is filtered; the rest are the filter's own arguments.
        for value in [*values[1:], *kwargs.values()]:
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and abs(value) > MAX_COUNT_ARGUMENT
            ):
                raise RenderLimitExceeded(
                    f"{name}: a count or width above {MAX_COUNT_ARGUMENT:,} is not allowed"
                )
        if name == "format" and values:
            _check_format(values[0])
        if name == "replace" and len(values) >= 3:
            subject, old, new = (str(v) for v in values[:3])
            grows = len(new) - len(old)
            # ''.count('') is len + 1: replacing the empty string inserts between every pair.
            if grows > 0 and len(subject) + subject.count(old) * grows > MAX_STRING_CHARS:
                raise _too_large()
        result = func(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles every ``{% for x in it %}`` as ``{% for x in it|shodaku_loop_guard %}``.

    The tree is rewritten before the generator's first pass, which declares the filters used.
    """

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            if loop.recursive:
                # loop(...) would iterate what it is given without passing through the guard.
                self.fail("recursive loops are not allowed in a template", loop.lineno)
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_GUARD, [], [], None, None, lineno=loop.iter.lineno
            )
        super().visit_Template(node, frame)


class BudgetedTemplate(Template):
    """A template whose every render starts with a fresh budget."""

    _flat_globals: dict[str, Any] | None = None

    def new_context(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> Context:
        """Jinja's, given the template's globals as one dict made at the first render. They are
        a ChainMap of the template's and the environment's, which Jinja walks twice per render
        (a third of the render of a campaign message, measured); nothing changes them after
        the environment is set up."""
        if self._flat_globals is None:
            self._flat_globals = dict(self.globals)
        return new_context(
            self.environment, self.name, self.blocks, vars, shared, self._flat_globals, locals
        )

    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _BUDGET.set(_Budget.start())
        try:
            return super().render(*args, **kwargs)
        finally:
            _BUDGET.reset(token)


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the render budget (see the module's docstring)."""

    code_generator_class = _GuardedCodeGenerator
    template_class = BudgetedTemplate
    concat = staticmethod(_bounded_concat)
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_GUARD] = _loop_guard
        # lipsum(n=10**9) writes placeholder text by the count; a newsletter has no use for it.
        self.globals.pop("lipsum", None)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _budget().check_time()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_STRING_CHARS
                ):
                    raise _too_large()
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_POWER_BITS
            ):
                raise RenderLimitExceeded(f"{left} ** {right} is too large a number")
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        result = super().call_binop(context, operator, left, right)
        _check_size(result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format`` in a template: its widths are checked when it is looked up."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(getattr(value, "__self__", None))
        return wrapped

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().check_time()
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
        return result


def _environment(*, html: bool) -> TemplateSandbox:
    return TemplateSandbox(
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
