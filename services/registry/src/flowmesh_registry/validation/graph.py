"""The graph: edges, branches, cycles, orphaned nodes, and which nodes lie upstream of which."""

from __future__ import annotations

import graphlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flowmesh_proto.catalog import node_type
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.workflow import ConditionNode, Edge, Node, SwitchNode
from flowmesh_registry.validation.problems import Problems, shown
from flowmesh_registry.validation.shape import NodeEntry

_FALLBACK = "fallback:"


@dataclass(frozen=True, slots=True)
class Graph:
    """Node ids and ancestry; a fallback counts as downstream of the node naming it."""

    ids: frozenset[str]
    positions: Mapping[str, int]
    ancestors: Mapping[str, int]  # a bit set over positions

    def is_upstream(self, candidate: str, node_id: str) -> bool:
        position = self.positions.get(candidate)
        mask = self.ancestors.get(node_id, 0)
        return candidate != node_id and position is not None and bool(mask >> position & 1)


def fallback_of(node: Node) -> str | None:
    """The node id named by ``on_error: fallback:<id>``, if any."""
    return node.on_error[len(_FALLBACK) :] if node.on_error.startswith(_FALLBACK) else None


def check_graph(
    nodes: list[NodeEntry],
    edges: list[tuple[int, Edge]],
    *,
    edge_count: int,
    max_edges: int,
    problems: Problems,
) -> Graph:
    ids = frozenset(entry.id for entry in nodes if entry.id is not None)
    by_id: dict[str, NodeEntry] = {}
    for entry in nodes:
        if entry.id is not None:
            by_id.setdefault(entry.id, entry)
    if edge_count > max_edges:
        problems.add("edges", ErrorCode.INVALID_EDGES, f"{edge_count} edges, at most {max_edges}")
    links = _check_edges(edges, by_id, problems)
    _check_cycles(links, problems)
    fallbacks = {
        (node_id, target)
        for node_id, entry in by_id.items()
        if entry.node is not None
        and (target := fallback_of(entry.node)) is not None
        and target in ids
        and target != node_id
    }
    _check_orphans(nodes, edges, {target for _, target in fallbacks}, problems)
    positions = {node_id: position for position, node_id in enumerate(sorted(ids))}
    links_and_fallbacks = [*links, *sorted(fallbacks)]
    return Graph(ids, positions, _ancestors(sorted(ids), links_and_fallbacks, positions))


def _check_edges(
    edges: list[tuple[int, Edge]], by_id: Mapping[str, NodeEntry], problems: Problems
) -> dict[tuple[str, str], int]:
    """The usable edges (known ends, no self edge, no duplicate), each with its index."""
    links: dict[tuple[str, str], int] = {}
    for index, edge in edges:
        path = f"edges[{index}]"
        ends = ((edge.from_, "from"), (edge.to, "to"))
        unknown = [(end, name) for end, name in ends if end not in by_id]
        for end, name in unknown:
            problems.add(f"{path}.{name}", ErrorCode.INVALID_EDGES, f"no node has id {shown(end)}")
        if unknown:
            continue
        if edge.from_ == edge.to:
            problems.add(path, ErrorCode.INVALID_EDGES, f"edge from {edge.from_!r} to itself")
            continue
        if (edge.from_, edge.to) in links:
            problems.add(path, ErrorCode.INVALID_EDGES, f"duplicate edge {edge.from_} -> {edge.to}")
            continue
        links[(edge.from_, edge.to)] = index
        _check_when(path, edge, by_id[edge.from_].node, problems)
    return links


def _check_when(path: str, edge: Edge, source: Node | None, problems: Problems) -> None:
    """Edges leaving a condition or switch choose a branch with ``when``; no other edge does."""
    if isinstance(source, ConditionNode):
        allowed: tuple[str, ...] = ("true", "false")
    elif isinstance(source, SwitchNode):
        allowed = (*source.parameters.cases, "default")
    else:
        if source is not None and edge.when is not None:
            problems.add(
                f"{path}.when",
                ErrorCode.INVALID_EDGES,
                f"only edges leaving a condition or switch take when; "
                f"{edge.from_!r} is a {node_type(source)} node",
            )
        return
    choices = ", ".join(repr(choice) for choice in allowed[:20])
    if edge.when is None:
        problems.add(
            f"{path}.when",
            ErrorCode.INVALID_EDGES,
            f"an edge leaving {node_type(source)} {edge.from_!r} needs when: one of {choices}",
        )
    elif edge.when not in allowed:
        problems.add(
            f"{path}.when",
            ErrorCode.INVALID_EDGES,
            f"when {shown(edge.when)} is none of {choices}",
        )


def _check_cycles(links: Mapping[tuple[str, str], int], problems: Problems) -> None:
    """One CIRCULAR_DEPENDENCY per strongly connected component, at its first edge."""
    successors: dict[str, list[str]] = {}
    for source, target in links:
        successors.setdefault(source, []).append(target)
    for component in strongly_connected(sorted(successors), successors):
        if len(component) < 2:
            continue
        members = set(component)
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for source, target in links:
            if source in members and target in members:
                sorter.add(target, source)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
        else:  # a strongly connected component of two or more nodes always holds a cycle
            continue
        steps = list(itertools.pairwise(cycle))
        first = min(range(len(steps)), key=lambda i: links.get(steps[i], len(links)))
        ordered = [step[0] for step in steps[first:] + steps[:first]]
        problems.add(
            f"edges[{links.get(steps[first], 0)}]",
            ErrorCode.CIRCULAR_DEPENDENCY,
            "cycle: " + " -> ".join([*ordered, ordered[0]]),
        )


def _check_orphans(
    nodes: list[NodeEntry],
    edges: list[tuple[int, Edge]],
    fallback_targets: set[str],
    problems: Problems,
) -> None:
    if len(nodes) < 2:
        return
    touched = {end for _, edge in edges for end in (edge.from_, edge.to)}
    for entry in nodes:
        if entry.id is not None and entry.id not in touched | fallback_targets:
            problems.add(
                entry.path,
                ErrorCode.ORPHANED_NODE,
                f"node {entry.id!r} has no edge and is no node's fallback",
            )


def strongly_connected(
    nodes: Iterable[str], successors: Mapping[str, list[str]]
) -> list[list[str]]:
    """Tarjan's algorithm without recursion; components come out sinks first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors.get(root, ())))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while not component or component[-1] != node:
                    component.append(stack.pop())
                    on_stack.discard(component[-1])
                components.append(component)
    return components


def _ancestors(
    ids: list[str], links: list[tuple[str, str]], positions: Mapping[str, int]
) -> dict[str, int]:
    """Each node's ancestors as a bit set; nodes on a cycle are each other's ancestors."""
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for source, target in links:
        successors.setdefault(source, []).append(target)
        predecessors.setdefault(target, []).append(source)
    masks: dict[str, int] = {}
    for component in reversed(strongly_connected(ids, successors)):
        members = set(component)
        mask = 0
        for node in component:
            for parent in predecessors.get(node, ()):
                if parent not in members:
                    mask |= masks[parent] | 1 << positions[parent]
        if len(component) > 1:
            for node in component:
                mask |= 1 << positions[node]
        for node in component:
            masks[node] = mask
    return masks
