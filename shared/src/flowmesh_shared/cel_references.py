"""What a CEL expression reads, found by a small tokenizer over its source (pure).

The CEL runtime reports only root names (``nodes`` for ``nodes.charge.output``) and counts
the names comprehension macros bind as variables; this module finds the members selected on
each root (``nodes.<id>``, ``secrets.<NAME>``, ``vars.<name>``, ``trigger.<field>``) and
leaves out macro-bound names, skipping string literals of every CEL form.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass

import cel

#: Comprehension macros: ``<list>.<macro>(<name>, ...)`` binds ``<name>`` inside the call.
MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter"})
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_NAMESPACES = frozenset({"optional"})
_DIGITS = frozenset(string.digits)
IDENT_START = frozenset(string.ascii_letters + "_")
IDENT_CHARS = IDENT_START | _DIGITS
_STRING_PREFIXES = frozenset({"r", "R", "b", "B"} | {a + b for a in "rR" for b in "bB"})
_STRING_PREFIXES |= frozenset(p[::-1] for p in _STRING_PREFIXES)


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


# --- the tokenizer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident" | "string" | "number" | "punct"
    text: str
    start: int


def lex(text: str, pos: int = 0) -> Iterator[_Token]:
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
        elif ch in IDENT_START:
            end = pos + 1
            while end < n and text[end] in IDENT_CHARS:
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
        value = string_literal_value(tokens[j + 1].text)
        if value is not None:
            return value, j + 3
    return None, j


def string_literal_value(literal: str) -> str | None:
    """The value a CEL string literal spells (CEL itself decodes the escapes)."""
    try:
        value = cel.compile(literal).execute({})
    except BaseException as exc:
        if not is_cel_error(exc):
            raise
        return None
    return value if isinstance(value, str) else None


def analyse(source: str, reported: frozenset[str]) -> References:
    """The references of ``source``, given the variable names the CEL runtime reported."""
    return _references(list(lex(source)), reported)


def is_cel_error(exc: BaseException) -> bool:
    """Errors raised by the CEL runtime, including a Rust panic (a BaseException)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
