"""JSON Schemas a tenant wrote, compiled safely and judged with problems at their paths.

One owner for every place a tenant's JSON Schema judges a value: an action's input (the
registry at validation, the executor at run time) and a run's input (the gateway).

- Compiled offline: a ``$ref`` to a remote document is refused, never fetched.
- ``pattern`` and ``patternProperties`` use the linear-time regex engine (no look-around,
  no backreferences): a tenant's pattern cannot make a service spin (ReDoS). Compiling is
  what a pattern costs (a Unicode class repeated, ``\\p{L}{200}``, takes ~45 ms), so the
  patterns of one schema together are priced first (:mod:`flowmesh_shared.regex_cost`) and
  a schema past :data:`MAX_PATTERN_UNITS` is refused before anything is compiled.
- At validation time a definition's values may still be templates (``{{ trigger.data.n }}``
  where the schema wants an integer): :func:`schema_problems` with ``templates=True`` lets
  any string holding a template pass whatever the schema says of it; the rendered value is
  judged again when the step runs.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any

import jsonschema_rs
import msgspec

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.storable import json_path
from flowmesh_shared.expressions import has_template
from flowmesh_shared.regex_cost import WORD, PatternError, pattern_units

__all__ = [
    "MAX_PATTERN_UNITS",
    "MAX_PROBLEMS",
    "CompiledSchemas",
    "compile_schema",
    "content_key",
    "schema_problems",
]

#: At most this many problems are reported for one value.
MAX_PROBLEMS = 50

#: What compiling all the patterns of one schema may cost together, in the units of
#: :mod:`flowmesh_shared.regex_cost` (``\\p{L}{200}`` is 110,000 and takes ~45 ms here).
MAX_PATTERN_UNITS = 100_000
#: Members whose values are data, not schemas (a "pattern" inside them is no pattern).
_DATA_MEMBERS = frozenset({"const", "enum", "default", "examples", "example"})
#: The ECMA classes the schema engine reads as ASCII (cheap), priced as one literal.
_ASCII_CLASS = re.compile(r"\\(.)", re.DOTALL)

Validator = jsonschema_rs.Validator


def compile_schema(schema: Any) -> Validator | str:
    """A validator for ``schema``, or why it is none (the first line of the compiler's
    message, or its patterns' cost past :data:`MAX_PATTERN_UNITS`)."""
    units = sum(_pattern_units(pattern) for pattern in _patterns(schema))
    if units > MAX_PATTERN_UNITS:
        return (
            f"its patterns would take too long to compile ({units} units; at most "
            f"{MAX_PATTERN_UNITS}): repeat Unicode classes such as \\p{{L}} fewer times"
        )
    try:
        return jsonschema_rs.validator_for(
            schema, offline=True, pattern_options=jsonschema_rs.RegexOptions()
        )
    except (ValueError, TypeError) as exc:  # ValidationError and ReferencingError included
        return str(exc).strip().split("\n", 1)[0] or type(exc).__name__


def _patterns(schema: Any) -> Iterator[str]:
    """Every ``pattern`` and ``patternProperties`` name in ``schema``, at any depth."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                yield from (key for key in node["patternProperties"] if isinstance(key, str))
            stack.extend(v for k, v in node.items() if k not in _DATA_MEMBERS)


def _pattern_units(pattern: str) -> int:
    """What compiling ``pattern`` costs: ``\\w`` and ``\\d`` are ASCII to the schema
    engine; a pattern Python cannot read is priced as if every character were a Unicode
    class."""
    ascii_read = _ASCII_CLASS.sub(lambda m: "a" if m.group(1) in "wd" else m.group(0), pattern)
    try:
        return pattern_units(ascii_read)
    except PatternError:
        return WORD * max(len(pattern), 1)


def schema_problems(
    validator: Validator,
    value: Any,
    *,
    root: str,
    templates: bool = False,
    code: ErrorCode = ErrorCode.VALIDATION_FAILED,
) -> list[ProblemItem]:
    """What is wrong with ``value`` (none: it is valid), each at ``root`` followed by where
    in the value (``input.items[0].sku``); at most :data:`MAX_PROBLEMS`."""
    found: list[ProblemItem] = []
    try:
        for error in validator.iter_errors(value):
            if templates and isinstance(error.instance, str) and has_template(error.instance):
                continue
            for path in _paths(error):
                found.append(
                    ProblemItem(path=json_path(path, root), code=code.name, message=error.message)
                )
            if len(found) >= MAX_PROBLEMS:
                del found[MAX_PROBLEMS:]
                break
    except ValueError as exc:  # e.g. "Recursion limit reached" on a deep value
        message = f"cannot be checked against its schema: {exc}"
        return [ProblemItem(path=root, code=code.name, message=message)]
    return found


def _paths(error: jsonschema_rs.ValidationError) -> list[list[str | int]]:
    """Where ``error`` is: a missing member's own path, each unexpected member's own path,
    else the instance's."""
    path: list[str | int] = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return [[*path, kind.property]]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        unexpected = kind.as_dict().get("unexpected") or []
        return [[*path, name] for name in unexpected if isinstance(name, str)] or [path]
    return [path]


def content_key(schema: Any) -> bytes:
    """A key that only the same schema has (SHA-256 of its JSON): two tenants' actions of
    one name and version, or a name deleted and made again, never share a compiled schema
    unless their schemas are the same."""
    return hashlib.sha256(msgspec.json.encode(schema, order="sorted")).digest()


class CompiledSchemas:
    """Compiled schemas by a caller's key, least recently used out (a schema that does not
    compile is remembered as its reason)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = max(1, size)
        self._compiled: OrderedDict[Hashable, Validator | str] = OrderedDict()

    def get(self, key: Hashable, schema: Any) -> Validator | str:
        """The validator for ``schema`` (compiled once per ``key``), or why it is none."""
        compiled = self.known(key)
        if compiled is None:
            compiled = compile_schema(schema)
            self.keep(key, compiled)
        return compiled

    def known(self, key: Hashable) -> Validator | str | None:
        """What was kept for ``key`` (None: nothing yet; compile it, then :meth:`keep`)."""
        compiled = self._compiled.get(key)
        if compiled is not None:
            self._compiled.move_to_end(key)
        return compiled

    def keep(self, key: Hashable, compiled: Validator | str) -> None:
        """Keep ``compiled`` for ``key``, the least recently used dropped past the size."""
        self._compiled[key] = compiled
        self._compiled.move_to_end(key)
        while len(self._compiled) > self.size:
            self._compiled.popitem(last=False)
