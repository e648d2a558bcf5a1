"""``map``: run a node template, or a workflow, once per item of a list; output in order.

``items`` is a CEL expression giving a list (or a template that rendered to one). Each
item runs with the run's variables plus ``item`` and ``index``, at most ``concurrency`` at
a time; instantaneous templates (noop, transform, condition, switch) are evaluated in
place. The first item that fails fails the map (the others are cancelled) with its index.

The map is one step of the run: its items publish no events of their own, and a map whose
executor died runs its items again (child workflows are found again by their ids).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import msgspec

from flowmesh_executor.instant import (
    EXPRESSION_BUDGET,
    EvaluationFailed,
    error_class,
    evaluate_instant,
    render_parameters,
)
from flowmesh_executor.nodes.base import Step, StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID
from flowmesh_proto.catalog import is_instant, node_type
from flowmesh_proto.workflow import MapNode, Node
from flowmesh_shared.expressions import ExpressionError, Meter, evaluate

_NODE = msgspec.json.Decoder(Node)


def runner(steps: Mapping[str, Step]) -> Step:
    """The ``map`` step; an item's node runs with the step ``steps`` names for its type."""

    async def run_map(call: StepCall, services: StepServices) -> Any:
        return await run(call, services, steps)

    return run_map


async def run(call: StepCall, services: StepServices, steps: Mapping[str, Step]) -> Any:
    items = _items(call)
    if len(items) > services.settings.map_max_items:
        limit = services.settings.map_max_items
        raise StepError(INVALID, f"{len(items)} items; a map may have at most {limit}")
    concurrency = call.parameters.get("concurrency", 10)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise StepError(INVALID, "concurrency must be a positive integer")
    template = call.parameters.get("node")
    workflow_id = call.parameters.get("workflow_id")
    if template is not None:
        node = _template(call, template)
        if is_instant(node):
            return await _instants(call, services, node, items)
        return await _fan_out(
            items, concurrency, lambda i, item: _step(call, services, steps, node, item, i)
        )
    if isinstance(workflow_id, str) and workflow_id:
        return await _fan_out(
            items,
            concurrency,
            lambda i, item: services.children.run_child(
                call, workflow_id, None, item, key=f"{call.node.id}[{i}]"
            ),
        )
    raise StepError(INVALID, "a map needs node or workflow_id")


def _items(call: StepCall) -> list[Any]:
    items = call.parameters.get("items")
    if isinstance(items, str):
        try:
            items = evaluate(items, call.variables, Meter(call.expression_budget))
        except ExpressionError as exc:
            raise StepError(error_class(exc), str(exc)) from None
    if not isinstance(items, list):
        raise StepError(INVALID, f"items gave {type(items).__name__}, not a list")
    return items


def _template(call: StepCall, template: Any) -> Node:
    if not isinstance(template, dict):
        raise StepError(INVALID, "node must be {type, parameters}")
    data = {"id": call.node.id, **template}
    try:
        node: Node = msgspec.convert(data, Node)
    except msgspec.ValidationError as exc:
        raise StepError(INVALID, f"node: {exc}") from None
    if isinstance(node, MapNode):
        raise StepError(INVALID, "a map's node cannot be another map")
    return node


def _variables(call: StepCall, item: Any, index: int) -> dict[str, Any]:
    return {**call.variables, "item": item, "index": index}


async def _instants(
    call: StepCall, services: StepServices, node: Node, items: list[Any]
) -> list[Any]:
    """Each item's output; every item has a budget of its own, and takes its turn at the
    loop (:class:`~flowmesh_shared.turns.Turns`) as any step's expressions do."""
    outputs: list[Any] = []
    for index, item in enumerate(items):
        meter = Meter(call.expression_budget)
        variables = _variables(call, item, index)
        if services.turns.due:
            await services.turns.take()
        try:
            outputs.append(evaluate_instant(node, variables, call.secrets, meter))
        except EvaluationFailed as exc:
            failure = "MapItemFailed" if exc.error_class != EXPRESSION_BUDGET else exc.error_class
            raise StepError(failure, f"item {index}: {exc.message}") from None
        finally:
            services.turns.spend(meter.spent)
    return outputs


async def _step(
    call: StepCall,
    services: StepServices,
    steps: Mapping[str, Step],
    node: Node,
    item: Any,
    index: int,
) -> Any:
    step = steps.get(node_type(node))
    if step is None:
        raise StepError(INVALID, f"a map cannot run {node_type(node)} nodes")
    variables = _variables(call, item, index)
    meter = Meter(call.expression_budget)
    try:
        raw = msgspec.to_builtins(node.parameters)
        await services.turns.take()
        parameters = render_parameters(node_type(node), raw, variables, call.secrets, meter)
    except ExpressionError as exc:
        raise StepError(error_class(exc), f"item {index}: {exc}") from None
    finally:
        services.turns.spend(meter.spent)
    item_call = dataclasses.replace(
        call,
        node=node,
        parameters=parameters,
        variables=variables,
        idempotency_key=f"{call.idempotency_key}[{index}]",
    )
    return await step(item_call, services)


async def _fan_out(items: list[Any], concurrency: int, work: Any) -> list[Any]:
    outputs: list[Any] = [None] * len(items)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, item: Any) -> None:
        async with gate:
            try:
                outputs[index] = await work(index, item)
            except StepError as exc:
                raise StepError(
                    "MapItemFailed", f"item {index}: {exc.error_class}: {exc.message}"
                ) from None

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(items):
                group.create_task(one(index, item))
    except* StepError as failures:
        raise _first(failures.exceptions) from None
    return outputs


def _first(errors: tuple[BaseException, ...]) -> StepError:
    found = [e for e in errors if isinstance(e, StepError)]
    return found[0] if found else StepError("MapItemFailed", "an item failed")
