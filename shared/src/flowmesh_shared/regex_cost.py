"""What compiling a ``matches`` pattern costs the CEL runtime (pure; DESIGN section 12).

The runtime (Rust's ``regex`` crate, RE2-like: searches are linear) compiles the pattern
again at every call, and compiling is what costs: a Unicode class such as ``\\w`` becomes
an automaton of hundreds of states, and a counted repetition copies it (``\\w{200}`` takes
~55 ms to compile here, ``a{200}`` ~0.03 ms). :func:`pattern_units` prices a pattern by the
program it compiles to, in the units of :mod:`flowmesh_shared.expression_cost` (about
0.6 us at most each, ``bench/expressions.py``), from the pattern's syntax tree as Python's own
regular-expression parser reads it (the two syntaxes agree on everything that costs:
classes, repetitions, alternations, groups, flags). Rust-only forms that cost like a class
(``\\p{..}``, ``\\P{..}``, ``\\pL``) are read as ``\\w``; a pattern Python cannot read is
refused (:class:`PatternError`), never guessed.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

try:  # Python 3.11 names the module sre_parse; later versions re._parser
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre

__all__ = ["PatternError", "pattern_units"]

#: Units per compiled element, measured on the runtime (per repetition of each):
#: a literal ~0.1 us, ``[a-z]`` ~0.3 us, ``.`` ~3.5 us, ``\s`` ~3 us, ``\d`` ~18 us, ``\w`` and
#: ``\pL`` ~250 us; negated classes match almost everything, as ``.`` does.
LITERAL = 1
RANGE = 1
ANY = 8
SPACE = 8
DIGIT = 40
WORD = 550
NEGATED = ANY
#: A case-insensitive literal compiles to both cases (and Unicode's other foldings).
CASE_FOLD = 3

_RUST_CLASS = re.compile(r"\\[pP](\{[^}]*\}|[A-Za-z])")
_RUST_FLAGS = re.compile(r"\(\?([a-zA-Z]*)-u(:|\))")
_CATEGORIES = {
    "CATEGORY_WORD": WORD,
    "CATEGORY_NOT_WORD": WORD,
    "CATEGORY_DIGIT": DIGIT,
    "CATEGORY_NOT_DIGIT": DIGIT,
    "CATEGORY_SPACE": SPACE,
    "CATEGORY_NOT_SPACE": SPACE,
}


class PatternError(ValueError):
    """A pattern whose compiled size cannot be read from its text."""


def pattern_units(pattern: str) -> int:
    """Units compiling ``pattern`` costs (at least 1)."""
    text = _RUST_CLASS.sub(r"\\w", pattern)
    text = _RUST_FLAGS.sub(_python_flags, text)
    text = text.replace("\\z", "\\Z")
    try:
        with warnings.catch_warnings():  # "possible nested set": a POSIX class, read as a set
            warnings.simplefilter("ignore")
            parsed = _sre.parse(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise PatternError(f"a pattern this service cannot price: {exc}") from None
    fold = CASE_FOLD if parsed.state.flags & re.IGNORECASE else 1
    return max(_units(list(parsed), fold), 1)


def _python_flags(match: re.Match[str]) -> str:
    """``(?i-u)`` as ``(?i)``, ``(?-u:...)`` as ``(?:...)``: Unicode is assumed (it costs more)."""
    flags, end = match.group(1), match.group(2)
    if end == ":":
        return f"(?{flags}:" if flags else "(?:"
    return f"(?{flags})" if flags else ""


def _units(items: list[tuple[Any, Any]], fold: int) -> int:
    total = 0
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            total += LITERAL * fold
        elif name == "NOT_LITERAL":
            total += NEGATED
        elif name == "ANY":
            total += ANY
        elif name == "IN":
            total += _class_units(arg, fold)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            copies = low + 1 if high == _sre.MAXREPEAT else high
            total += max(copies, 1) * _units(list(body), fold)
        elif name == "SUBPATTERN":
            group_flags = arg[1]
            inner = CASE_FOLD if group_flags & re.IGNORECASE else fold
            total += _units(list(arg[-1]), inner)
        elif name == "BRANCH":
            total += sum(_units(list(branch), fold) for branch in arg[1])
        elif name in ("ATOMIC_GROUP",):
            total += _units(list(arg), fold)
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += _units(list(arg[1]), fold)
        elif name == "CATEGORY":
            total += _CATEGORIES.get(str(arg), ANY)
        else:  # anchors (AT), group references, conditionals: a state each
            total += 1
    return total


def _class_units(items: list[tuple[Any, Any]], fold: int) -> int:
    total = 0
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            total += NEGATED
        elif name == "CATEGORY":
            total += _CATEGORIES.get(str(arg), ANY)
        elif name == "RANGE":
            total += RANGE * fold
        else:
            total += LITERAL * fold
    return max(total, 1)
