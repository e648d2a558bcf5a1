"""CEL expressions and ``{{ expr }}`` templates (DESIGN section 4). Pure: no I/O, no clock.

An :class:`Expression` is compiled once (cached by source) and carries its static
:class:`References`, found by a small tokenizer over the source, so the validator can check
every variable it reads before anything runs. Only the functions the CEL runtime ships are
allowed (:data:`FUNCTIONS`); an expression calling any other fails to compile.

Results are converted to plain JSON-compatible values: bytes become base64 text (standard
alphabet, padded), timestamps RFC 3339 text, durations ISO 8601 text (``PT1.5S``, as msgspec
writes a ``timedelta``), optionals their value or null; non-finite numbers are refused.

A template is a string with ``{{ expr }}`` segments. One that is exactly one expression
(whitespace around it allowed) keeps the expression's type; otherwise each value is written
into the text (strings as they are, anything else as compact JSON). A literal ``{{`` or ``}}``
is written as an expression: ``{{ "{{" }}``. Dict keys are never templates.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cel
import msgspec

from flowmesh_shared.cel_references import (
    IDENT_CHARS,
    IDENT_START,
    MACROS,
    References,
    analyse,
    is_cel_error,
    lex,
)
from flowmesh_shared.expression_cost import Cost, CostError, data_size, estimate

__all__ = [
    "DEFAULT_BUDGET",
    "FUNCTIONS",
    "MACROS",
    "MAX_SOURCE_LENGTH",
    "EvaluationError",
    "Expression",
    "ExpressionBudgetExceeded",
    "ExpressionError",
    "ExpressionTooCostly",
    "Meter",
    "References",
    "Template",
    "compile_expression",
    "evaluate",
    "find_templates",
    "has_template",
    "member_path",
    "parse_template",
    "render",
    "render_template",
]

#: Longest expression accepted at all (the parser's recursion is bounded by the C stack).
MAX_SOURCE_LENGTH = 8192
#: Functions the CEL runtime provides (extension libraries are not enabled).
FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches",
        "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn", "type",
        "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds",
        "of", "none", "ofNonZeroValue", "hasValue", "value", "orValue", "or",
    }
)  # fmt: skip


class ExpressionError(ValueError):
    """An expression or template is not valid."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        shown = source if len(source) <= 120 else source[:117] + "..."
        super().__init__(f"{reason} (in {shown!r})")


class ExpressionTooCostly(ExpressionError):
    """An expression whose cost cannot be bounded (a pattern that is not a literal, ...)."""


class EvaluationError(ExpressionError):
    """An expression failed while it was evaluated."""


class ExpressionBudgetExceeded(EvaluationError):
    """An evaluation would cost more than the budget left; it was not started."""


#: Units one step (or one filter) may spend on expressions; about 12 ms at worst here
#: (bench/expressions.py measures a unit: at most ~0.6 us, reading data).
DEFAULT_BUDGET = 20_000


_SCALARS = frozenset({bool, int, float})


class Meter:
    """A budget of cost units that evaluations spend before they start (DESIGN section 12).

    One meter per step, per event filter, per item: :func:`evaluate` measures the data an
    expression reads, prices it with the expression's :class:`Cost` and refuses with
    :class:`ExpressionBudgetExceeded` what would not fit, so no evaluation runs long. The
    sizes of values already measured through this meter are remembered.
    """

    __slots__ = ("_sizes", "budget", "spent")

    def __init__(self, budget: float = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self.spent = 0.0
        self._sizes: dict[int, tuple[Any, int]] = {}

    @property
    def remaining(self) -> float:
        return self.budget - self.spent

    def size(self, value: Any, limit: int) -> int:
        """``value``'s size in units, counted up to ``limit`` + 1."""
        if value is None or type(value) in _SCALARS:
            return 1
        known = self._sizes.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        size = data_size(value, limit)
        if size <= limit:
            self._sizes[id(value)] = (value, size)
        return size

    def charge(self, expression: Expression, data: int) -> None:
        units = expression.cost.units(data)
        if units > self.remaining:
            raise ExpressionBudgetExceeded(
                expression.source,
                f"costs more than its budget: about {units:,.0f} units with {data:,} units "
                f"of data, {max(self.remaining, 0):,.0f} of {self.budget:,.0f} left",
            )
        self.spent += units


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression with its static references."""

    source: str
    references: References
    cost: Cost = field(compare=False, repr=False)
    program: Any = field(compare=False, repr=False)
    #: Each root read, with a tree of the names selected below it (None: all of it).
    roots: tuple[tuple[str, ReadTree], ...] = field(default=(), compare=False, repr=False)

    @property
    def is_constant(self) -> bool:
        return not self.references.variables


@dataclass(frozen=True, slots=True)
class Template:
    """A string cut into literal text and expressions; ``typed`` keeps the value's type."""

    text: str
    segments: tuple[str | Expression, ...]
    typed: bool
    #: The expressions among the segments, in order.
    expressions: tuple[Expression, ...] = field(default=(), compare=False, repr=False)

    @property
    def references(self) -> References:
        return functools.reduce(
            lambda a, b: a | b, (e.references for e in self.expressions), References()
        )


# --- compiling --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile ``source``; raises :class:`ExpressionError` when it is not a usable expression."""
    if not source.strip():
        raise ExpressionError(source, "empty expression")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(source, f"expression longer than {MAX_SOURCE_LENGTH} characters")
    try:
        program = cel.compile(source)
        reported = program.references()
    except BaseException as exc:
        if not is_cel_error(exc):
            raise
        raise ExpressionError(source, f"does not compile: {_compile_message(exc)}") from None
    unknown = sorted(
        name
        for name in reported.get("functions", ())
        if name.isidentifier() and not name.startswith("_") and name not in FUNCTIONS
    )
    if unknown:
        raise ExpressionError(source, f"unknown function {unknown[0]!r}")
    references = analyse(source, frozenset(reported.get("variables", ())))
    try:
        cost = estimate(source)
    except CostError as exc:
        raise ExpressionTooCostly(source, f"its cost cannot be bounded: {exc}") from None
    read = {path[0] for path in cost.reads}
    paths = [*cost.reads, *((name,) for name in references.variables if name not in read)]
    roots = _read_tree(paths)
    assert roots is not None
    return Expression(
        source=source,
        references=references,
        cost=cost,
        program=program,
        roots=tuple(roots.items()),
    )


#: What is read below a value: None for all of it, else each name selected and below it.
ReadTree = dict[str, "ReadTree"] | None


def _read_tree(paths: list[tuple[str, ...]]) -> ReadTree:
    if any(not path for path in paths):
        return None
    children: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        children.setdefault(path[0], []).append(path[1:])
    return {name: _read_tree(below) for name, below in children.items()}


def _compile_message(exc: BaseException) -> str:
    text = str(exc)
    marker = text.find("ERROR: <input>:")
    if marker >= 0:
        text = text[marker + len("ERROR: <input>:") :]
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."


def _evaluation_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc}"
    lines = str(exc).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return text or type(exc).__name__


# --- templates --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Cut ``text`` into literals and expressions; raises :class:`ExpressionError`."""
    segments: list[str | Expression] = []
    pos = 0
    while True:
        opening = text.find("{{", pos)
        literal_end = len(text) if opening < 0 else opening
        stray = text.find("}}", pos, literal_end)
        if stray >= 0:
            raise ExpressionError(text, f"'}}}}' at offset {stray} closes no '{{{{'")
        if literal_end > pos:
            segments.append(text[pos:literal_end])
        if opening < 0:
            break
        closing = _expression_end(text, opening + 2)
        if closing is None:
            raise ExpressionError(text, f"'{{{{' at offset {opening} is never closed")
        source = text[opening + 2 : closing].strip()
        if not source:
            raise ExpressionError(text, f"empty '{{{{ }}}}' at offset {opening}")
        segments.append(compile_expression(source))
        pos = closing + 2
    expressions = [s for s in segments if isinstance(s, Expression)]
    typed = len(expressions) == 1 and all(
        isinstance(s, Expression) or not s.strip() for s in segments
    )
    return Template(
        text=text, segments=tuple(segments), typed=typed, expressions=tuple(expressions)
    )


def _expression_end(text: str, start: int) -> int | None:
    """Index of the ``}}`` closing the expression that starts at ``start`` (strings skipped)."""
    depth = 0
    for token in lex(text, start):
        if token.kind != "punct":
            continue
        if token.text == "{":
            depth += 1
        elif token.text == "}":
            if depth == 0 and text.startswith("}}", token.start):
                return token.start
            depth = max(depth - 1, 0)
    return None


def has_template(text: str) -> bool:
    return "{{" in text or "}}" in text


def find_templates(value: Any) -> list[tuple[str, Template | ExpressionError]]:
    """Every templated string inside a JSON value, with its path (``.body.items[2]``).

    A malformed template comes with the :class:`ExpressionError` saying why, so a validator
    can report them all.
    """
    found: list[tuple[str, Template | ExpressionError]] = []
    for path, text in _strings(value, ""):
        if has_template(text):
            try:
                found.append((path, parse_template(text)))
            except ExpressionError as exc:
                found.append((path, exc))
    return found


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, path + member_path(str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def member_path(key: str) -> str:
    """``.key`` for a plain name, else ``["key"]`` (JSON-quoted)."""
    plain = key[:1] in IDENT_START and all(c in IDENT_CHARS or c == "-" for c in key)
    return "." + key if plain else "[" + msgspec.json.encode(key).decode() + "]"


# --- evaluating -------------------------------------------------------------------------


def evaluate(
    expression: Expression | str, context: Mapping[str, Any], meter: Meter | None = None
) -> Any:
    """Evaluate to a plain JSON-compatible value; raises :class:`EvaluationError`, and
    :class:`ExpressionBudgetExceeded` (before it starts) when ``meter`` (by default a
    meter of :data:`DEFAULT_BUDGET` for this evaluation alone) has too little left."""
    if isinstance(expression, str):
        expression = compile_expression(expression)
    if meter is None:
        meter = Meter()
    scope = _scope(expression, context, meter)
    try:
        result = expression.program.execute(scope)
    except BaseException as exc:
        if not is_cel_error(exc):
            raise
        raise EvaluationError(expression.source, _evaluation_message(exc)) from None
    return _plain(result, expression.source)


def _scope(expression: Expression, context: Mapping[str, Any], meter: Meter) -> dict[str, Any]:
    """What crosses into CEL: only the paths the expression reads (converting the rest, a
    1 MiB trigger for ``trigger.data.id``, would cost more than evaluating), after the
    meter is charged for them. Raises :class:`ExpressionBudgetExceeded`."""
    limit = expression.cost.walk_limit(meter.budget)
    scope: dict[str, Any] = {}
    size = 0
    for name, wanted in expression.roots:
        if name in context:
            value, used = _prune(context[name], wanted, meter, limit - size)
            scope[name] = value
            # a secret costs the same whatever its length: a budget's figures say nothing of it
            size += len(wanted or ()) + 1 if name == "secrets" else used
        if size > limit:
            raise ExpressionBudgetExceeded(
                expression.source,
                f"costs more than its budget: it reads over {limit:,} units of data, more "
                f"than a budget of {meter.budget:,.0f} units allows it",
            )
    meter.charge(expression, size)
    return scope


def _prune(value: Any, tree: ReadTree, meter: Meter, limit: int) -> tuple[Any, int]:
    """``value`` cut down to what ``tree`` reads, and its size."""
    if tree is None or not isinstance(value, dict):
        return value, meter.size(value, limit)
    pruned: dict[str, Any] = {}
    size = 1
    for key, below in tree.items():
        if key in value:
            pruned[key], used = _prune(value[key], below, meter, limit - size)
            size += used + 1
    return pruned, size


def render_template(
    template: Template, context: Mapping[str, Any], meter: Meter | None = None
) -> Any:
    meter = Meter() if meter is None else meter
    if template.typed:
        return evaluate(template.expressions[0], context, meter)
    parts = [
        segment if isinstance(segment, str) else _as_text(evaluate(segment, context, meter))
        for segment in template.segments
    ]
    return "".join(parts)


def render(value: Any, context: Mapping[str, Any], meter: Meter | None = None) -> Any:
    """Render every template inside a JSON value; dict keys are left as they are. Every
    expression spends from ``meter`` (by default one :data:`DEFAULT_BUDGET` for all)."""
    meter = Meter() if meter is None else meter
    if isinstance(value, str):
        if not has_template(value):
            return value
        return render_template(parse_template(value), context, meter)
    if isinstance(value, dict):
        return {key: render(item, context, meter) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, context, meter) for item in value]
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _plain(value: Any, source: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise EvaluationError(source, f"result {value} is not a finite number")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | timedelta):
        return msgspec.to_builtins(value)
    if isinstance(value, list | tuple):
        return [_plain(item, source) for item in value]
    if isinstance(value, dict):
        return {_plain_key(key, source): _plain(item, source) for key, item in value.items()}
    if isinstance(value, cel.OptionalValue):
        return _plain(value.value(), source) if value.has_value() else None
    raise EvaluationError(source, f"a result of type {type(value).__name__} has no JSON form")


def _plain_key(key: Any, source: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    raise EvaluationError(source, f"a map key of type {type(key).__name__} has no JSON form")
