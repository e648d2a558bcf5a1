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
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cel
import msgspec

#: Longest expression accepted at all (the parser's recursion is bounded by the C stack).
MAX_SOURCE_LENGTH = 8192
#: Comprehension macros: ``<list>.<macro>(<name>, ...)`` binds ``<name>`` inside the call.
MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter"})
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
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_NAMESPACES = frozenset({"optional"})
_DIGITS = frozenset(string.digits)
_IDENT_START = frozenset(string.ascii_letters + "_")
_IDENT_CHARS = _IDENT_START | _DIGITS
_STRING_PREFIXES = frozenset({"r", "R", "b", "B"} | {a + b for a in "rR" for b in "bB"})
_STRING_PREFIXES |= frozenset(p[::-1] for p in _STRING_PREFIXES)


class ExpressionError(ValueError):
    """An expression or template is not valid."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        shown = source if len(source) <= 120 else source[:117] + "..."
        super().__init__(f"{reason} (in {shown!r})")


class EvaluationError(ExpressionError):
    """An expression failed while it was evaluated."""


@dataclass(frozen=True, slots=True)
class References:
    """What an expression reads, known before it runs.

    ``nodes`` pairs each node id with the literal member after it (``output``), or None.
    ``whole_values`` are roots used without a literal member (``size(nodes)``, ``nodes[x]``).
    """

    variables: frozenset[str] = frozenset()
    whole_values: frozenset[str] = frozenset()
    nodes: frozenset[tuple[str, str | None]] = frozenset()
    secrets: frozenset[str] = frozenset()
    vars: frozenset[str] = frozenset()
    trigger_fields: frozenset[str] = frozenset()
    run_fields: frozenset[str] = frozenset()
    uses_macros: bool = False

    def __or__(self, other: References) -> References:
        return References(
            variables=self.variables | other.variables,
            whole_values=self.whole_values | other.whole_values,
            nodes=self.nodes | other.nodes,
            secrets=self.secrets | other.secrets,
            vars=self.vars | other.vars,
            trigger_fields=self.trigger_fields | other.trigger_fields,
            run_fields=self.run_fields | other.run_fields,
            uses_macros=self.uses_macros or other.uses_macros,
        )


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression with its static references."""

    source: str
    references: References
    program: Any = field(compare=False, repr=False)

    @property
    def is_constant(self) -> bool:
        return not self.references.variables


@dataclass(frozen=True, slots=True)
class Template:
    """A string cut into literal text and expressions; ``typed`` keeps the value's type."""

    text: str
    segments: tuple[str | Expression, ...]
    typed: bool

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return tuple(s for s in self.segments if isinstance(s, Expression))

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
        if not _is_cel_error(exc):
            raise
        raise ExpressionError(source, f"does not compile: {_compile_message(exc)}") from None
    unknown = sorted(
        name
        for name in reported.get("functions", ())
        if name.isidentifier() and not name.startswith("_") and name not in FUNCTIONS
    )
    if unknown:
        raise ExpressionError(source, f"unknown function {unknown[0]!r}")
    references = _references(list(_lex(source)), frozenset(reported.get("variables", ())))
    return Expression(source=source, references=references, program=program)


def _is_cel_error(exc: BaseException) -> bool:
    """Errors raised by the CEL runtime, including a Rust panic (a BaseException)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


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


# --- the tokenizer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident" | "string" | "number" | "punct"
    text: str
    start: int


def _lex(text: str, pos: int = 0) -> Iterator[_Token]:
    """CEL tokens from ``pos``: identifiers, string and number literals, single punctuation."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif text.startswith("//", pos):
            newline = text.find("\n", pos)
            pos = n if newline < 0 else newline + 1
        elif ch in "\"'":
            end = _string_end(text, pos, raw=False)
            yield _Token("string", text[pos:end], pos)
            pos = end
        elif ch in _IDENT_START:
            end = pos + 1
            while end < n and text[end] in _IDENT_CHARS:
                end += 1
            word = text[pos:end]
            if word in _STRING_PREFIXES and end < n and text[end] in "\"'":
                end = _string_end(text, end, raw="r" in word.lower())
                yield _Token("string", text[pos:end], pos)
            else:
                yield _Token("ident", word, pos)
            pos = end
        elif ch in _DIGITS or (ch == "." and pos + 1 < n and text[pos + 1] in _DIGITS):
            end = _number_end(text, pos)
            yield _Token("number", text[pos:end], pos)
            pos = end
        else:
            yield _Token("punct", ch, pos)
            pos += 1


def _string_end(text: str, pos: int, *, raw: bool) -> int:
    """Index just past the string literal whose opening quote is at ``pos``."""
    quote = text[pos]
    delimiter = quote * 3 if text.startswith(quote * 3, pos) else quote
    i = pos + len(delimiter)
    while i < len(text):
        if not raw and text[i] == "\\":
            i += 2
        elif text.startswith(delimiter, i):
            return i + len(delimiter)
        else:
            i += 1
    return len(text)


def _number_end(text: str, pos: int) -> int:
    n = len(text)
    if text.startswith(("0x", "0X"), pos):
        end = pos + 2
        while end < n and text[end] in string.hexdigits:
            end += 1
    else:
        end = _digits_end(text, pos)
        if end + 1 < n and text[end] == "." and text[end + 1] in _DIGITS:
            end = _digits_end(text, end + 1)
        if end < n and text[end] in "eE":
            exponent = end + 2 if end + 1 < n and text[end + 1] in "+-" else end + 1
            if exponent < n and text[exponent] in _DIGITS:
                end = _digits_end(text, exponent)
    return end + 1 if end < n and text[end] in "uU" else end


def _digits_end(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    return pos


# --- references -------------------------------------------------------------------------


def _references(tokens: list[_Token], reported: frozenset[str]) -> References:
    """Roots read and the literal members selected on them, minus comprehension variables."""
    roots: set[str] = set()
    whole: set[str] = set()
    members: dict[str, set[str]] = {}
    nodes: set[tuple[str, str | None]] = set()
    scopes: list[str | None] = []  # one per open bracket: the name a macro call binds
    declared: set[int] = set()  # token indexes that declare a comprehension variable
    for i, token in enumerate(tokens):
        if token.kind == "punct":
            if token.text in "([{":
                bound = _macro_binding(tokens, i)
                scopes.append(bound)
                if bound is not None:
                    declared.add(i + 1)
            elif token.text in ")]}" and scopes:
                scopes.pop()
            continue
        if token.kind != "ident" or i in declared or not _is_root(tokens, i, scopes):
            continue
        name = "." + token.text if _follows_leading_dot(tokens, i) else token.text
        roots.add(name)
        first, after = _selector(tokens, i + 1)
        if first is None:
            whole.add(name)
            continue
        members.setdefault(name, set()).add(first)
        if name == "nodes":
            nodes.add((first, _selector(tokens, after)[0]))
    all_bound = {tokens[i].text for i in declared}
    roots |= {v for v in reported if v not in all_bound | _TYPE_NAMES | _NAMESPACES}
    return References(
        variables=frozenset(roots),
        whole_values=frozenset(whole),
        nodes=frozenset(nodes),
        secrets=frozenset(members.get("secrets", ())),
        vars=frozenset(members.get("vars", ())),
        trigger_fields=frozenset(members.get("trigger", ())),
        run_fields=frozenset(members.get("run", ())),
        uses_macros=bool(declared),
    )


def _is(tokens: list[_Token], i: int, text: str) -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == "punct" and tokens[i].text == text


def _ends_operand(token: _Token) -> bool:
    return token.kind != "punct" or token.text in ")]}"


def _follows_leading_dot(tokens: list[_Token], i: int) -> bool:
    return _is(tokens, i - 1, ".") and (i < 2 or not _ends_operand(tokens[i - 2]))


def _macro_binding(tokens: list[_Token], i: int) -> str | None:
    """The name bound by ``.<macro>(<name>, ...`` when the bracket at ``i`` opens one."""
    if not (_is(tokens, i, "(") and _is(tokens, i - 2, ".") and _is(tokens, i + 2, ",")):
        return None
    macro, name = tokens[i - 1], tokens[i + 1]
    if macro.kind == "ident" and macro.text in MACROS and name.kind == "ident":
        return name.text
    return None


def _is_root(tokens: list[_Token], i: int, scopes: list[str | None]) -> bool:
    """Whether the identifier at ``i`` reads a variable (not a member, function or keyword)."""
    text = tokens[i].text
    if _is(tokens, i - 1, ".") and not _follows_leading_dot(tokens, i):
        return False
    if _is(tokens, i + 1, "(") or text in _KEYWORDS or text in _TYPE_NAMES or text in scopes:
        return False
    is_namespace_call = (
        text in _NAMESPACES
        and _is(tokens, i + 1, ".")
        and i + 2 < len(tokens)
        and tokens[i + 2].kind == "ident"
        and _is(tokens, i + 3, "(")
    )
    return not is_namespace_call


def _selector(tokens: list[_Token], j: int) -> tuple[str | None, int]:
    """The literal member selected at ``j`` (``.name`` or ``["name"]``) and the index after it."""
    if _is(tokens, j, ".") and j + 1 < len(tokens) and tokens[j + 1].kind == "ident":
        if _is(tokens, j + 2, "("):
            return None, j  # a method call on the value itself
        return tokens[j + 1].text, j + 2
    is_index = _is(tokens, j, "[") and _is(tokens, j + 2, "]")
    if is_index and tokens[j + 1].kind == "string":
        value = _string_literal_value(tokens[j + 1].text)
        if value is not None:
            return value, j + 3
    return None, j


def _string_literal_value(literal: str) -> str | None:
    """The value a CEL string literal spells (CEL itself decodes the escapes)."""
    try:
        value = cel.compile(literal).execute({})
    except BaseException as exc:
        if not _is_cel_error(exc):
            raise
        return None
    return value if isinstance(value, str) else None


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
    return Template(text=text, segments=tuple(segments), typed=typed)


def _expression_end(text: str, start: int) -> int | None:
    """Index of the ``}}`` closing the expression that starts at ``start`` (strings skipped)."""
    depth = 0
    for token in _lex(text, start):
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
    plain = key[:1] in _IDENT_START and all(c in _IDENT_CHARS or c == "-" for c in key)
    return "." + key if plain else "[" + msgspec.json.encode(key).decode() + "]"


# --- evaluating -------------------------------------------------------------------------


def evaluate(expression: Expression | str, context: Mapping[str, Any]) -> Any:
    """Evaluate to a plain JSON-compatible value; raises :class:`EvaluationError`."""
    if isinstance(expression, str):
        expression = compile_expression(expression)
    try:
        result = expression.program.execute(dict(context))
    except BaseException as exc:
        if not _is_cel_error(exc):
            raise
        raise EvaluationError(expression.source, _evaluation_message(exc)) from None
    return _plain(result, expression.source)


def render_template(template: Template, context: Mapping[str, Any]) -> Any:
    if template.typed:
        return evaluate(template.expressions[0], context)
    parts = [
        segment if isinstance(segment, str) else _as_text(evaluate(segment, context))
        for segment in template.segments
    ]
    return "".join(parts)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template inside a JSON value; dict keys are left as they are."""
    if isinstance(value, str):
        return render_template(parse_template(value), context) if has_template(value) else value
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, context) for item in value]
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
