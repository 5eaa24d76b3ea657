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
allocate more (``*``, ``**``, ``+``, ``~``, format widths and field counts, filter widths and
counts, the printing of a list) are checked before the allocation. Going over any of them is a
:class:`RenderLimitExceeded`, hence a 422 on save.

Compiling costs too: Jinja's parser and Python's compiler spend about a millisecond and a few
kilobytes per tag, and recurse once per nesting level. So a part is lexed first, which is
linear, and refused past :data:`MAX_TEMPLATE_TOKENS` tokens before the parser sees it; nesting
too deep for the parser is a 422 as well. These limits keep one request from holding the
service (DS-6: availability of the processing; every unsubscribe waits behind a stalled loop).
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from app.errors import InvalidInput

Part = Literal["subject", "html", "text"]

# What a template may use (docs/reference.md, templates: per-recipient variables). Anything else
# is undefined and, under StrictUndefined, fails the sample render that every template goes
# through when it is saved.
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
# Integers built with ** or * (a 10,000-bit integer has about 3,000 digits).
MAX_POWER_BITS = 10_000
# A good template renders in milliseconds; a save is answered within about this.
RENDER_SECONDS = 1.0
# Tokens of one part (a ``{{ name }}`` is five): a long newsletter has a few thousand; compiling
# this many takes about half a second.
MAX_TEMPLATE_TOKENS = 10_000
# A width or precision in a format specification ('%9999s', '{:>9999}') has at most 4 digits.
_MAX_FORMAT_WIDTH_DIGITS = 4

# One %-conversion, matched where a '%' is found: the mapping key is bounded so that a '%(' with
# no ')' costs a bounded scan, not one to the end of the string for every '%' (quadratic).
_PERCENT_SPEC = re.compile(r"%(\([^)]{0,200}\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_DIGITS = re.compile(r"\d+")
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
    seconds: float

    @classmethod
    def start(cls) -> _Budget:
        now = time.monotonic()
        deadline, seconds = now + RENDER_SECONDS, RENDER_SECONDS
        message = _MESSAGE_BUDGET.get()
        if message is not None and message[0] < deadline:
            deadline, seconds = message
        return cls(MAX_LOOP_ITERATIONS, deadline, seconds)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"the template takes more than {self.seconds:g} seconds to render"
            )

    def iterate(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise RenderLimitExceeded(
                f"the template's loops run more than {MAX_LOOP_ITERATIONS:,} times"
            )
        self.check_time()


# While a campaign sends, one deadline for all the parts of a message (see message_budget).
_MESSAGE_BUDGET: ContextVar[tuple[float, float] | None] = ContextVar(
    "shodaku_message_budget", default=None
)


@contextlib.contextmanager
def message_budget(seconds: float) -> Iterator[None]:
    """Every part rendered inside shares one deadline, ``seconds`` from now (DS-6).

    A template that renders at once for the sample recipient may be slow for real ones
    (``{% if email != … %}`` around a heavy loop): at send time a message gets a small budget
    for all its parts together, not the save check's second per part."""
    token = _MESSAGE_BUDGET.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _MESSAGE_BUDGET.reset(token)


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


def _weight(value: object, limit: int = MAX_STRING_CHARS) -> int:
    """About how many characters ``str(value)`` would have, counted without building it (a
    list holding the same long string a thousand times is small, its printing is not); the
    count stops as soon as it passes ``limit``, so the cost is bounded too."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 16
    return total


def _check_weight(*values: object) -> None:
    if sum(_weight(v) for v in values) > MAX_STRING_CHARS:
        raise _too_large()


def _wide() -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"a format width or precision of more than {_MAX_FORMAT_WIDTH_DIGITS} digits, or one "
        "taken from the arguments (* or a nested {}), is not allowed"
    )


def _width(digits: str | None) -> int:
    if not digits:
        return 0
    if digits == "*" or len(digits) > _MAX_FORMAT_WIDTH_DIGITS:
        raise _wide()
    return int(digits)


def _format_fields(fmt: str) -> Iterator[int]:
    """The widths of the fields of ``fmt``, read as both %-style and {}-style, in one pass
    over it (linear: every search starts where the last one ended)."""
    at = fmt.find("%")
    while at >= 0:
        if fmt.startswith("%%", at):
            at = fmt.find("%", at + 2)
            continue
        spec = _PERCENT_SPEC.match(fmt, at)
        if spec is None or (spec.group(1) is None and fmt.startswith("%(", at)):
            raise RenderLimitExceeded("a %-format mapping key of more than 200 characters")
        yield max(_width(spec.group(2)), _width(spec.group(3)))
        at = fmt.find("%", max(spec.end(), at + 1))
    at = fmt.find("{")
    while at >= 0:
        if fmt.startswith("{{", at):
            at = fmt.find("{", at + 2)
            continue
        end = fmt.find("}", at + 1)
        if end < 0:
            break  # str.format refuses it
        field = fmt[at + 1 : end]
        if "{" in field:
            raise _wide()  # a width or precision taken from the arguments
        spec_text = field.partition(":")[2]
        yield max((_width(d.group()) for d in _DIGITS.finditer(spec_text)), default=0)
        at = fmt.find("{", end + 1)


def _check_format(fmt: object, *args: object) -> None:
    """Before ``fmt % args``, ``fmt.format(*args)`` or ``fmt|format(*args)`` runs: each field
    prints at most its width or the longest argument, so their sum bounds the result, which
    catches '%999999999s' and '{0}' repeated a million times alike."""
    if not isinstance(fmt, str):
        return
    longest = max((_weight(a) for a in _flatten_args(args)), default=0)
    total = len(fmt)
    for width in _format_fields(fmt):
        total += max(width, longest)
        if total > MAX_STRING_CHARS:
            raise _too_large()


def _flatten_args(args: tuple[object, ...]) -> Iterator[object]:
    # fmt % (a, b) and fmt % {'k': v}: each field prints one of the items, not the container.
    for arg in args:
        if isinstance(arg, tuple):
            yield from arg
        elif isinstance(arg, dict):
            yield from arg.values()
        else:
            yield arg


def weigh_output(value: Any) -> Any:
    """Every ``{{ ... }}`` output: a list is weighed before it is printed. Any environment that
    renders templates with a ``finalize`` of its own calls this first (DS-6)."""
    if not isinstance(value, str):
        _check_weight(value)
    return value


_finalize = weigh_output


def _checked_concat(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
    """``a ~ b``: the operands are weighed before they are printed and joined."""
    _budget().check_time()
    _check_weight(*parts)
    return join(parts)


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
        # Filters marked pass_context, pass_eval_context or pass_environment get that first.
        passed = 1 if args and isinstance(args[0], Context | EvalContext | Environment) else 0
        if name == "join" and len(args) > passed and not isinstance(args[passed], Sized):
            # A generator (map, select) is joined whole: counted first, as a list.
            args = (*args[:passed], list(args[passed]), *args[passed + 1 :])
        values = list(args[passed:])
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
        _check_filter(name, values, kwargs)
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


def _filter_estimate(name: str, values: list[Any], kwargs: dict[str, Any]) -> int:
    """For the filters whose result can be many times their input, the size of that result,
    estimated from the input before the filter runs; for the others, the input's size (their
    result is a small multiple of it and is checked after)."""

    def arg(position: int, key: str, default: Any) -> Any:
        if key in kwargs:
            return kwargs[key]
        return values[position] if len(values) > position else default

    subject = values[0] if values else None
    size = _weight(subject)
    if name == "indent":
        width = arg(1, "width", 4)
        per_line = len(width) if isinstance(width, str) else int(width)
        lines = subject.count("\n") + 1 if isinstance(subject, str) else size
        return size + lines * max(per_line, 0)
    if name == "join":
        separator = arg(1, "d", "")
        count = len(subject) if isinstance(subject, Sized) else size
        return size + _weight(separator) * count
    if name == "wordwrap":
        width = max(int(arg(1, "width", 79)), 1)
        wrap = arg(3, "wrapstring", None) or "\n"
        return size + (size // width + 1) * (_weight(wrap) + 1)
    if name in ("tojson", "pprint"):
        indent = arg(1, "indent", None)
        # JSON escapes a character in six (\u003c); indentation repeats per item.
        return size * 6 * (1 + (indent if isinstance(indent, int) else 0))
    return size + sum(_weight(v) for v in [*values[1:], *kwargs.values()])


def _check_filter(name: str, values: list[Any], kwargs: dict[str, Any]) -> None:
    if name == "format" and values:
        _check_format(values[0], *values[1:], *kwargs.values())
        return
    if name == "sum":
        start = kwargs.get("start", values[2] if len(values) > 2 else 0)
        if not isinstance(start, int | float):
            # sum(start=[]) concatenates lists one by one: quadratic, in one C call.
            raise RenderLimitExceeded("sum: only numbers can be summed")
    if _filter_estimate(name, values, kwargs) > MAX_STRING_CHARS:
        raise _too_large()


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

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """``a ~ b`` through :func:`_checked_concat` (Jinja's own joins without looking)."""
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.checked_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


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
    checked_concat = staticmethod(_checked_concat)
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
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_POWER_BITS
            ):
                raise RenderLimitExceeded("the product is too large a number")
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
        elif operator == "+":
            if (
                isinstance(left, str | list | tuple)
                and isinstance(right, str | list | tuple)
                and len(left) + len(right) > MAX_STRING_CHARS
            ):
                raise _too_large()
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right)
        result = super().call_binop(context, operator, left, right)
        _check_size(result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format(...)`` in a template: its widths and fields are checked against its
        arguments before it runs."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = getattr(value, "__self__", None)
        checked_call = wrapped

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, *args, *kwargs.values())
            return checked_call(*args, **kwargs)

        return functools.update_wrapper(checked, wrapped)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().check_time()
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(result)
        return result


def _environment(*, html: bool) -> TemplateSandbox:
    return TemplateSandbox(
        undefined=StrictUndefined,
        autoescape=html,
        finalize=_finalize,
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
    # Jinja folds constant filters while compiling: they spend a budget of their own.
    budget = _BUDGET.set(_Budget.start())
    try:
        _check_token_count(part, env, source)
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"{part} line {exc.lineno}: {exc.message}") from None
    except (RecursionError, SyntaxError):
        # Jinja's parser recurses per level; Python's compiler refuses the generated code
        # past 100 indentation levels, 20 nested loops or 200 nested brackets.
        raise TemplateInvalid(
            f"{part}: the template nests tags, brackets or operators too deeply."
        ) from None
    except RenderLimitExceeded as exc:
        raise TemplateInvalid(f"{part}: {exc}") from None
    finally:
        _BUDGET.reset(budget)


def _check_token_count(part: Part, env: TemplateSandbox, source: str) -> None:
    """Refuse a part with more than :data:`MAX_TEMPLATE_TOKENS` tokens before it is parsed
    (DS-6): the lexer is linear and stops here at the limit; the parser and the compiler that
    would follow cost far more per token."""
    for count, (lineno, _, _) in enumerate(env.lex(source), start=1):
        if count > MAX_TEMPLATE_TOKENS:
            raise TemplateInvalid(
                f"{part} line {lineno}: the template has more than {MAX_TEMPLATE_TOKENS:,} "
                "tags, names and operators; split it or simplify it."
            )


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
        rendered = template.render(context)
    except Exception as exc:
        raise render_error(part, exc) from exc
    if not rendered.isascii():
        try:
            rendered.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate ("\ud800" in the template or a value): no mail can carry it.
            raise TemplateInvalid(
                f"{part}: the rendered text holds a character that is not valid Unicode "
                f"(position {exc.start})."
            ) from exc
    return rendered


def check_single_line(field: str, value: str) -> None:
    """MH-4: refuse CR, LF or NUL in a value that becomes (part of) a header."""
    if any(c in value for c in _HEADER_BREAKERS):
        raise TemplateInvalid(
            f"{field} must be a single line: it contains a line break or a NUL character."
        )
