"""A run's input judged against its workflow version's ``input_schema`` (a JSON Schema).

Validators are compiled once per (workflow id, version, content hash) and kept in a bounded
LRU cache; a schema that does not compile is remembered as such. Schemas are compiled
offline: a ``$ref`` to a remote document is refused, never fetched (the gateway must not
make requests a tenant chooses).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import jsonschema_rs

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.storable import json_path
from flowmesh_shared.errors import FlowmeshError

#: At most this many problems are reported for one input.
MAX_PROBLEMS = 50

Key = tuple[str, int, str]


class InvalidInputSchema(FlowmeshError):
    """The workflow's input_schema is not a valid JSON Schema, so no input can be judged."""

    def __init__(self, reason: str) -> None:
        message = f"the workflow's input_schema is not a valid JSON Schema: {reason}"
        item = ProblemItem(
            path="input_schema", code=ErrorCode.VALIDATION_FAILED.name, message=message
        )
        super().__init__(ErrorCode.VALIDATION_FAILED, message, errors=[item])


class InputSchemas:
    """Compiled input schemas by (workflow id, version, content hash), least recently used out."""

    def __init__(self, size: int = 1024) -> None:
        self.size = max(1, size)
        self._compiled: OrderedDict[Key, jsonschema_rs.Validator | str] = OrderedDict()

    def problems(self, key: Key, schema: Any, value: Any) -> list[ProblemItem]:
        """What is wrong with ``value`` under ``schema`` (none: it is valid); each problem's
        path is ``input`` followed by where in the input (``input.items[0].sku``)."""
        validator = self._validator(key, schema)
        found: list[ProblemItem] = []
        try:
            for error in validator.iter_errors(value):
                found.append(_problem(error))
                if len(found) >= MAX_PROBLEMS:
                    break
        except ValueError as exc:  # e.g. "Recursion limit reached" on a deep input
            return [_item("input", f"the input cannot be checked against its schema: {exc}")]
        return found

    def _validator(self, key: Key, schema: Any) -> jsonschema_rs.Validator:
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = _compile(schema)
            self._compiled[key] = compiled
            while len(self._compiled) > self.size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        if isinstance(compiled, str):
            raise InvalidInputSchema(compiled)
        return compiled


def _compile(schema: Any) -> jsonschema_rs.Validator | str:
    """A validator, or why ``schema`` is none (the first line of the compiler's message)."""
    try:
        return jsonschema_rs.validator_for(schema, offline=True)
    except (ValueError, TypeError) as exc:  # ValidationError and ReferencingError included
        return str(exc).strip().split("\n", 1)[0] or type(exc).__name__


def _problem(error: jsonschema_rs.ValidationError) -> ProblemItem:
    path = list(error.instance_path)
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
        path.append(error.kind.property)  # the missing member's own path
    return _item(input_path(path), error.message)


def _item(path: str, message: str) -> ProblemItem:
    return ProblemItem(path=path, code=ErrorCode.VALIDATION_FAILED.name, message=message)


def input_path(parts: list[str | int]) -> str:
    """``["a", 0, "b c"]`` as ``input.a[0]["b c"]``: the problem paths of the API."""
    return json_path(parts, "input")
