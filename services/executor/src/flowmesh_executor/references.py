"""What a definition needs resolved before it runs: the secret names its http requests read,
and the connectors its http and action nodes name.

Pure. Computed once per definition (cached by identity, like plans). Only the parameters a
secret may be sent in (:data:`SECRET_PARAMETERS`: an http node's, or a map's per-item http
template's, ``url``, ``headers``, ``query`` and ``body``) are looked at: a secret named
anywhere else (a version stored before that rule) is never resolved, so it cannot be read
there even by mistake (:func:`flowmesh_executor.instant.render_parameters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import msgspec

from flowmesh_proto.actions import action_refs
from flowmesh_proto.catalog import SECRET_PARAMETERS, node_type
from flowmesh_proto.workflow import Definition, HttpParameters, MapNode
from flowmesh_shared.expressions import ExpressionError, find_templates

__all__ = ["connector_names", "secret_names"]


def secret_names(definition: Definition) -> frozenset[str]:
    return _secret_names(_Identity(definition))


def connector_names(definition: Definition) -> frozenset[str]:
    """The connectors the definition's http and action nodes (and maps' per-item ones) name."""
    names = {connector for _, connector in action_refs(definition)}
    for node in definition.nodes:
        parameters = node.parameters
        if isinstance(parameters, HttpParameters) and parameters.connector is not None:
            names.add(parameters.connector)
        template = node.parameters.node if isinstance(node, MapNode) else None
        if template is not None and template.type == "http":
            name = template.parameters.get("connector")
            if isinstance(name, str):
                names.add(name)
    return frozenset(names)


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
        names |= _sent(node_type(node), msgspec.to_builtins(node.parameters))
        template = node.parameters.node if isinstance(node, MapNode) else None
        if template is not None:
            names |= _sent(template.type, template.parameters)
    return frozenset(names)


def _sent(type_name: str, parameters: Mapping[str, Any]) -> set[str]:
    """The secrets read by the parameters of a ``type_name`` node that send them."""
    sending = SECRET_PARAMETERS.get(type_name, frozenset())
    names: set[str] = set()
    for key in sending & parameters.keys():
        for _, template in find_templates(parameters[key]):
            if not isinstance(template, ExpressionError):
                names |= template.references.secrets
    return names
