"""What a CEL expression may cost, known before it runs (pure; DESIGN section 12).

The CEL runtime we use (``common-expression-language``) cannot be interrupted, counts
nothing, and holds the GIL while it evaluates; neither other CEL binding on PyPI offers a
cost limit we could set (``cel-expr-python`` has a fixed iteration budget of 10,000 that
still lets one level of ``map`` run for a second; ``cel-bind`` has none). So Flowmesh bounds
cost itself, the way cel-go's cost estimator does, from the expression's syntax tree:

- :func:`estimate` parses the source (CEL's grammar, as the runtime accepts it) and gives a
  :class:`Cost`: the comprehension nesting, the largest literal list or map, the number of
  ``+`` (string and list building), and an upper bound of the work of one evaluation as a
  polynomial in ``n``, the size of the data the expression reads (:func:`data_size`);
- the validator refuses what is too costly whatever the data (nesting, literals, building);
- :func:`flowmesh_shared.expressions.evaluate` measures ``n`` on the actual data and refuses
  an evaluation whose bound exceeds the budget left, before it starts.

The bound is an upper bound: every value is assumed as large as everything read, except
that the elements a comprehension visits add up to at most its range (``sum x_i^k <=
(sum x_i)^k``). Units are "values touched"; ``bench/expressions.py`` measures what a unit
costs on this machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flowmesh_shared.cel_references import lex, string_literal_value
from flowmesh_shared.regex_cost import PatternError, pattern_units

__all__ = ["Cost", "CostError", "Polynomial", "data_size", "estimate"]

#: A string counts one unit per this many characters (plus one), as values are copied.
STRING_UNIT = 16

#: What copying one value of a list costs, against converting one value into CEL (1 unit).
COPY_WEIGHT = 1 / 16

_Monomial = tuple[tuple[str, int], ...]  # sorted (variable, exponent) pairs; () is 1


class CostError(ValueError):
    """The expression's cost cannot be bounded (a form the estimator does not know)."""


class Polynomial:
    """A polynomial with non-negative coefficients over ``n`` and comprehension variables."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict[_Monomial, float] | None = None) -> None:
        self.terms: dict[_Monomial, float] = terms or {}

    @classmethod
    def const(cls, value: float) -> Polynomial:
        return cls({(): float(value)}) if value else cls()

    @classmethod
    def var(cls, name: str) -> Polynomial:
        return cls({((name, 1),): 1.0})

    def __add__(self, other: Polynomial | float) -> Polynomial:
        other = other if isinstance(other, Polynomial) else Polynomial.const(other)
        terms = dict(self.terms)
        for monomial, coefficient in other.terms.items():
            terms[monomial] = terms.get(monomial, 0.0) + coefficient
        return Polynomial(terms)

    __radd__ = __add__

    def __mul__(self, other: Polynomial | float) -> Polynomial:
        if not isinstance(other, Polynomial):
            return Polynomial({m: c * other for m, c in self.terms.items()} if other else {})
        terms: dict[_Monomial, float] = {}
        for (m1, c1), (m2, c2) in itertools.product(self.terms.items(), other.terms.items()):
            monomial = _product(m1, m2)
            terms[monomial] = terms.get(monomial, 0.0) + c1 * c2
        return Polynomial(terms)

    __rmul__ = __mul__

    def power(self, exponent: int) -> Polynomial:
        result = Polynomial.const(1)
        for _ in range(exponent):
            result = result * self
        return result

    def sum_over(self, name: str, count: Polynomial, total: Polynomial) -> Polynomial:
        """This polynomial summed over every element ``name`` takes in a range of ``count``
        elements whose sizes add up to ``total``."""
        result = Polynomial()
        for monomial, coefficient in self.terms.items():
            exponent = dict(monomial).get(name, 0)
            rest = Polynomial({tuple(p for p in monomial if p[0] != name): coefficient})
            result = result + rest * (total.power(exponent) if exponent else count)
        return result

    def degree(self, name: str = "n") -> int:
        return max((dict(m).get(name, 0) for m in self.terms), default=0)

    def at(self, n: float) -> float:
        """The value with ``n`` given (every other variable must be gone)."""
        total = 0.0
        for monomial, coefficient in self.terms.items():
            value = coefficient
            for name, exponent in monomial:
                if name != "n":
                    raise ValueError(f"{name} is still free")
                value *= n**exponent
            total += value
        return total

    def __repr__(self) -> str:
        parts = [
            f"{c:g}" + "".join(f"*{v}^{e}" if e > 1 else f"*{v}" for v, e in m)
            for m, c in sorted(self.terms.items())
        ]
        return " + ".join(parts) or "0"


def _product(a: _Monomial, b: _Monomial) -> _Monomial:
    exponents = dict(a)
    for name, exponent in b:
        exponents[name] = exponents.get(name, 0) + exponent
    return tuple(sorted(exponents.items()))


@dataclass(frozen=True, slots=True)
class Cost:
    """The static cost of an expression.

    ``work`` bounds one evaluation's units for data of size ``n`` (reading it included);
    ``depth`` is the comprehension nesting (a comprehension inside another's arguments);
    ``literal_items`` the largest literal list or map; ``builds`` the ``+`` count; ``reads``
    the paths of data read (a root and the names selected on it: ``("trigger", "data",
    "id")``), each needed whole.
    """

    work: Polynomial
    depth: int
    literal_items: int
    builds: int
    reads: frozenset[tuple[str, ...]] = frozenset()
    _terms: tuple[tuple[float, int], ...] = field(default=(), init=False, repr=False)
    _linear: tuple[float, float] | None = field(default=None, init=False, repr=False)
    _limits: dict[float, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        terms = tuple((c, dict(m).get("n", 0)) for m, c in self.work.terms.items())
        if any(name != "n" for m in self.work.terms for name, _ in m):
            raise CostError("a comprehension's variable is left in the bound")
        object.__setattr__(self, "_terms", terms)
        if all(e <= 1 for _, e in terms):
            linear = (
                sum(c for c, e in terms if e == 0),
                sum(c for c, e in terms if e == 1),
            )
            object.__setattr__(self, "_linear", linear)
        object.__setattr__(self, "_limits", {})

    def units(self, n: int) -> float:
        n = max(n, 1)
        if self._linear is not None:  # most expressions: no comprehension
            return self._linear[0] + self._linear[1] * n
        return float(sum(c * n**e for c, e in self._terms))

    def walk_limit(self, budget: float) -> int:
        """The most data worth measuring: more could never fit ``budget`` (remembered)."""
        limit = self._limits.get(budget)
        if limit is None:
            limit = self._limits[budget] = max(self.largest_data(budget), 0)
        return limit

    def largest_data(self, budget: float) -> int:
        """The largest data size whose evaluation fits in ``budget`` units (-1: none)."""
        if self.units(0) > budget:
            return -1
        low, high = 1, 1
        while self.units(high) <= budget:
            low, high = high, high * 2
            if high > 1 << 40:
                return high
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.units(middle) <= budget else (low, middle)
        return low


# --- sizes of data ----------------------------------------------------------------------


def data_size(value: Any, limit: int) -> int:
    """Units of ``value`` (one per value, strings one per :data:`STRING_UNIT` characters
    more), counting at most up to ``limit`` + 1: a larger value costs only the walk so far."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        size += 1
        if isinstance(item, str | bytes):
            size += len(item) // STRING_UNIT
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        if size > limit:
            return size
    return size


# --- the estimator ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    """Bounds of one sub-expression: ``count`` elements (what a comprehension would visit),
    ``total`` size, and ``work`` to compute it."""

    count: Polynomial
    total: Polynomial
    work: Polynomial
    depth: int = 0
    literal: str | None = None  # the value of a string literal


_ONE = Polynomial.const(1)
_N = Polynomial.var("n")
_SCALAR = _Value(_ONE, _ONE, _ONE)
_RELATIONS = {"==", "!=", "<", "<=", ">", ">=", "in"}
_CONVERSIONS = {"int", "uint", "double", "string", "bytes", "timestamp", "duration", "bool"}
_GETTERS = {
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
}  # fmt: skip
_MACROS = {"all", "exists", "exists_one", "existsOne", "map", "filter"}
_TYPE_NAMES = {
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
}


def estimate(source: str) -> Cost:
    """The :class:`Cost` of ``source`` (an expression the runtime compiled); raises
    :class:`CostError` for a form it cannot bound."""
    parser = _Parser(source)
    value = parser.expression()
    if parser.peek() is not None:
        raise CostError(f"unexpected {parser.peek()!r}")
    return Cost(
        work=value.work + _N,  # the data read is converted once
        depth=value.depth,
        literal_items=parser.literal_items,
        builds=parser.builds,
        reads=frozenset(parser.reads),
    )


class _Parser:
    """Recursive descent over CEL's grammar, computing :class:`_Value` bounds as it goes."""

    def __init__(self, source: str) -> None:
        self.tokens = _join(lex(source))
        self.pos = 0
        self.scopes: list[tuple[str, str]] = []  # (bound name, its variable)
        self.fresh = itertools.count(1)
        self.literal_items = 0
        self.builds = 0
        self.path: tuple[str, ...] | None = None  # set by primary() for a root
        self.reads: set[tuple[str, ...]] = set()

    # token helpers
    def peek(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.tokens[index][1] if index < len(self.tokens) else None

    def kind(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.tokens[index][0] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise CostError("unexpected end of expression")
        text = self.tokens[self.pos][1]
        if expected is not None and text != expected:
            raise CostError(f"expected {expected!r}, found {text!r}")
        self.pos += 1
        return text

    # grammar
    def expression(self) -> _Value:
        condition = self.binary(0)
        if self.peek() != "?":
            return condition
        self.take("?")
        yes = self.binary(0)
        self.take(":")
        no = self.expression()
        return _Value(
            count=yes.count + no.count,
            total=yes.total + no.total,
            work=condition.work + yes.work + no.work + 1,
            depth=max(condition.depth, yes.depth, no.depth),
        )

    _LEVELS = (("||",), ("&&",), tuple(_RELATIONS), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> _Value:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.kind() == "punct" or self.peek() == "in":
            operator = self.peek()
            if operator not in self._LEVELS[level]:
                break
            self.take()
            right = self.binary(level + 1)
            left = _combine(operator or "", left, right)
            if operator == "+":
                self.builds += 1
        return left

    def unary(self) -> _Value:
        if self.peek() in ("!", "-") and self.kind() == "punct":
            self.take()
            operand = self.unary()
            return _Value(_ONE, _ONE, operand.work + 1, operand.depth)
        self.path = None
        value = self.primary()
        path, self.path = self.path, None
        return self.member(value, path)

    def primary(self) -> _Value:
        kind, text = self.kind(), self.peek()
        if kind in ("number", "string"):
            self.take()
            size = 1 + len(text or "") // STRING_UNIT
            literal = string_literal_value(text or "") if kind == "string" else None
            return _Value(_ONE, Polynomial.const(size), Polynomial.const(size), literal=literal)
        if text == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if text == "[":
            return self.list_literal()
        if text == "{":
            return self.map_literal()
        if text == ".":  # a leading dot names a root variable
            self.take()
        if kind != "ident" and text != ".":
            raise CostError(f"unexpected {text!r}")
        name = self.take()
        if self.peek() == "(":
            return self.call(None, name)
        if name in ("true", "false", "null"):
            return _SCALAR
        if name == "optional" and self.peek() == ".":
            self.take(".")
            return self.call(None, self.take())
        if name in _TYPE_NAMES:
            return _SCALAR
        bound = next((v for n, v in reversed(self.scopes) if n == name), None)
        if bound is not None:
            variable = Polynomial.var(bound)
            return _Value(variable, variable, _ONE)
        self.path = (name,)  # a root: trigger, nodes, ...
        return _Value(_N, _N, _ONE)

    def list_literal(self) -> _Value:
        self.take("[")
        items = self.arguments("]")
        self.literal_items = max(self.literal_items, len(items))
        total = _ONE + sum((i.total for i in items), Polynomial())
        work = total + sum((i.work for i in items), Polynomial())
        depth = max((i.depth for i in items), default=0)
        return _Value(Polynomial.const(len(items)), total, work, depth)

    def map_literal(self) -> _Value:
        self.take("{")
        entries: list[_Value] = []
        while self.peek() != "}":
            key = self.expression()
            self.take(":")
            entries += [key, self.expression()]
            if self.peek() != ",":
                break
            self.take(",")
        self.take("}")
        self.literal_items = max(self.literal_items, len(entries) // 2)
        total = _ONE + sum((e.total for e in entries), Polynomial())
        work = total + sum((e.work for e in entries), Polynomial())
        depth = max((e.depth for e in entries), default=0)
        return _Value(Polynomial.const(len(entries) // 2 or 1), total, work, depth)

    def arguments(self, closing: str) -> list[_Value]:
        values: list[_Value] = []
        while self.peek() != closing:
            values.append(self.expression())
            if self.peek() != ",":
                break
            self.take(",")
        self.take(closing)
        return values

    def member(self, value: _Value, path: tuple[str, ...] | None) -> _Value:
        """Selections, indexes and calls after ``value``; ``path`` is the root and the
        names selected on it so far, recorded in :attr:`reads` where the chain of plain
        selections ends (what follows needs that whole value)."""
        while self.peek() in (".", "["):
            selects = self.peek() == "." and self.kind(1) == "ident" and self.peek(2) != "("
            if path is not None and selects:
                path += (self.tokens[self.pos + 1][1],)
            elif path is not None:
                self.reads.add(path)
                path = None
            if self.take() == "[":
                index = self.expression()
                self.take("]")
                value = _Value(
                    count=value.total,
                    total=value.total,
                    work=value.work + index.work + index.total + 1,
                    depth=max(value.depth, index.depth),
                )
                continue
            name = self.take()
            if self.peek() == "(":
                value = self.call(value, name)
            else:
                value = _Value(value.total, value.total, value.work + 1, value.depth)
        if path is not None:
            self.reads.add(path)
        return value

    def call(self, target: _Value | None, name: str) -> _Value:
        self.take("(")
        if target is not None and name in _MACROS:
            return self.comprehension(target, name)
        args = ([target] if target is not None else []) + self.arguments(")")
        depth = max((a.depth for a in args), default=0)
        work = sum((a.work for a in args), Polynomial()) + 1
        totals = sum((a.total for a in args), Polynomial())
        if name == "has":
            return _Value(_ONE, _ONE, work, depth)
        if name == "matches" and len(args) == 2:
            # the runtime compiles the pattern at every call, then searches in linear time
            pattern = args[1].literal
            if pattern is None:
                raise CostError("matches() takes its pattern as a string literal")
            try:
                compiling = pattern_units(pattern)
            except PatternError as exc:
                raise CostError(str(exc)) from None
            work = work + compiling + (args[0].total + 1) * (1 + compiling // 64)
            return _Value(_ONE, _ONE, work, depth)
        if name in ("size", "contains", "startsWith", "endsWith", "type", "hasValue"):
            return _Value(_ONE, _ONE, work + totals, depth)
        if name in _GETTERS or name == "none":
            return _Value(_ONE, _ONE, work + totals, depth)
        if name in _CONVERSIONS:
            grown = totals * 2 + 2  # an int or double as text, an escape per character
            return _Value(grown, grown, work + grown, depth)
        if name in ("dyn", "of", "ofNonZeroValue", "value", "orValue", "or"):
            counts = sum((a.count for a in args), Polynomial())
            return _Value(counts, totals, work + totals, depth)
        raise CostError(f"no cost known for {name}()")

    def comprehension(self, target: _Value, macro: str) -> _Value:
        if self.kind() != "ident":
            raise CostError(f"{macro}() must bind a name first")
        name = self.take()
        self.take(",")
        variable = f"x{next(self.fresh)}"
        self.scopes.append((name, variable))
        parts = self.arguments(")")
        self.scopes.pop()
        if not parts or len(parts) > 2 or (len(parts) == 2 and macro != "map"):
            raise CostError(
                f"{macro}() takes a name and {'one or two' if macro == 'map' else 'one'} expression"
            )
        per_item = sum((p.work for p in parts), Polynomial()) + 1
        work = target.work + per_item.sum_over(variable, target.count, target.total)
        depth = max(target.depth, 1 + max(p.depth for p in parts))
        if macro == "map":
            total = _ONE + parts[-1].total.sum_over(variable, target.count, target.total)
        elif macro == "filter":
            total = target.total
        else:
            return _Value(_ONE, _ONE, work, depth)
        # the runtime copies the list built so far at every step
        copies = target.count * total * COPY_WEIGHT
        return _Value(target.count, total, work + total + copies, depth)


def _combine(operator: str, left: _Value, right: _Value) -> _Value:
    depth = max(left.depth, right.depth)
    work = left.work + right.work + 1
    if operator == "+":  # numbers add; strings, bytes and lists are copied
        total = left.total + right.total
        return _Value(left.count + right.count, total, work + total, depth)
    if operator in _RELATIONS:  # equality and `in` look through both sides
        return _Value(_ONE, _ONE, work + left.total + right.total + right.count, depth)
    return _Value(_ONE, _ONE, work, depth)


def _join(tokens: Iterator[Any]) -> list[tuple[str, str]]:
    """Tokens as (kind, text), with two-character operators joined."""
    joined: list[tuple[str, str]] = []
    previous_end = -1
    for token in tokens:
        text, kind = token.text, token.kind
        if kind == "punct" and joined and joined[-1][0] == "punct" and previous_end == token.start:
            pair = joined[-1][1] + text
            if pair in ("&&", "||", "==", "!=", "<=", ">="):
                joined[-1] = ("punct", pair)
                previous_end = token.start + 1
                continue
        joined.append((kind, text))
        previous_end = token.start + len(text)
    return joined
