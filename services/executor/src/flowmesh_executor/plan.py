"""A definition's graph, precomputed once: edges in and out, fallbacks, terminal nodes, order.

Pure: no I/O. A :class:`Plan` is built from a valid definition (the registry validated it);
:func:`plan_of` keeps the last few plans so an executor running many runs of one version
builds each once.
"""

from __future__ import annotations

import graphlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from flowmesh_proto.catalog import is_instant
from flowmesh_proto.workflow import Definition, Edge, Node

FALLBACK_PREFIX = "fallback:"


@dataclass(frozen=True, slots=True)
class Plan:
    definition: Definition
    nodes: Mapping[str, Node]
    incoming: Mapping[str, tuple[Edge, ...]]
    outgoing: Mapping[str, tuple[Edge, ...]]
    #: fallback node id -> the ids of the nodes naming it in ``on_error: fallback:<id>``
    rescues: Mapping[str, tuple[str, ...]]
    #: nodes with no outgoing edge that are no node's fallback (their outputs form the run's)
    terminal: tuple[str, ...]
    #: every node, each after its predecessors and after the nodes it is the fallback of
    order: tuple[str, ...]

    def is_instant(self, node_id: str) -> bool:
        """Whether the engine evaluates the node itself (CEL), with no ``step.started``."""
        return is_instant(self.nodes[node_id])


def fallback_of(node: Node) -> str | None:
    """The node id named by ``on_error: fallback:<id>``, if any."""
    if node.on_error.startswith(FALLBACK_PREFIX):
        return node.on_error[len(FALLBACK_PREFIX) :]
    return None


def build_plan(definition: Definition) -> Plan:
    nodes = {node.id: node for node in definition.nodes}
    incoming: dict[str, list[Edge]] = {node_id: [] for node_id in nodes}
    outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in nodes}
    for edge in definition.edges:
        incoming[edge.to].append(edge)
        outgoing[edge.from_].append(edge)
    rescues: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        target = fallback_of(node)
        if target is not None and target in nodes and target != node_id:
            rescues.setdefault(target, []).append(node_id)
    terminal = tuple(n for n in nodes if not outgoing[n] and n not in rescues)
    return Plan(
        definition=definition,
        nodes=nodes,
        incoming={k: tuple(v) for k, v in incoming.items()},
        outgoing={k: tuple(v) for k, v in outgoing.items()},
        rescues={k: tuple(v) for k, v in rescues.items()},
        terminal=terminal,
        order=_order(list(nodes), definition.edges, rescues),
    )


def _order(ids: list[str], edges: list[Edge], rescues: Mapping[str, list[str]]) -> tuple[str, ...]:
    """A topological order over edges and fallback links, stable in definition order.

    A fallback upstream of the node naming it makes a cycle of links (the validator checks
    cycles of edges only); the order then follows the edges alone, and the engine's deadlock
    guard skips what can never run.
    """
    links = [(edge.from_, edge.to) for edge in edges]
    with_fallbacks = links + [(namer, target) for target, ns in rescues.items() for namer in ns]
    for candidate in (with_fallbacks, links):
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        position = {node_id: index for index, node_id in enumerate(ids)}
        for node_id in ids:
            sorter.add(node_id)
        for source, target in candidate:
            sorter.add(target, source)
        try:
            sorter.prepare()
        except graphlib.CycleError:
            continue
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            order.extend(ready)
            sorter.done(*ready)
        return tuple(order)
    return tuple(ids)


_CACHE: OrderedDict[int, Plan] = OrderedDict()
_CACHE_SIZE = 64


def plan_of(definition: Definition) -> Plan:
    """The plan of ``definition``, cached by identity (the plan keeps the definition alive)."""
    cached = _CACHE.get(id(definition))
    if cached is not None and cached.definition is definition:
        _CACHE.move_to_end(id(definition))
        return cached
    plan = build_plan(definition)
    _CACHE[id(definition)] = plan
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return plan
