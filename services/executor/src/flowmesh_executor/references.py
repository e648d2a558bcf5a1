"""What a definition needs resolved before it runs: the secret names its expressions read.

Pure. Computed once per definition (cached by identity, like plans).
"""

from __future__ import annotations

from functools import lru_cache

import msgspec

from flowmesh_proto.workflow import (
    ConditionNode,
    Definition,
    MapNode,
    SwitchNode,
    WaitForEventNode,
)
from flowmesh_shared.expressions import ExpressionError, compile_expression, find_templates

__all__ = ["secret_names"]


def secret_names(definition: Definition) -> frozenset[str]:
    return _secret_names(_Identity(definition))


class _Identity:
    """Hashes by identity, so the cache holds each definition object once."""

    __slots__ = ("definition",)

    def __init__(self, definition: Definition) -> None:
        self.definition = definition

    def __hash__(self) -> int:
        return id(self.definition)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.definition is self.definition


@lru_cache(maxsize=256)
def _secret_names(key: _Identity) -> frozenset[str]:
    names: set[str] = set()
    for node in key.definition.nodes:
        for _, template in find_templates(msgspec.to_builtins(node.parameters)):
            if not isinstance(template, ExpressionError):
                names |= template.references.secrets
        for source in _expressions(node):
            try:
                names |= compile_expression(source).references.secrets
            except ExpressionError:
                continue
    return frozenset(names)


def _expressions(node: object) -> list[str]:
    match node:
        case ConditionNode(parameters=p) | SwitchNode(parameters=p):
            return [p.expression]
        case MapNode(parameters=p):
            return [p.items]
        case WaitForEventNode(parameters=p):
            return [p.match] if p.match else []
    return []
