"""Expressions and templates: each compiles, reads only what its place can see, and has the
type its slot needs when that is known before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from flowmesh_proto.catalog import NODE_KINDS, Slot, node_type
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import SECRET_NAME_PATTERN, is_secret_name
from flowmesh_proto.workflow import EventTrigger, MapNode, Trigger
from flowmesh_registry.validation.graph import Graph
from flowmesh_registry.validation.limits import Limits
from flowmesh_registry.validation.problems import Problems, shown
from flowmesh_registry.validation.secret_placement import (
    SECRETS,
    refuse_computed_secrets,
    refuse_secret,
    refuse_secret_before_path,
    secrets_allowed,
)
from flowmesh_registry.validation.shape import NodeEntry
from flowmesh_shared.expressions import (
    EvaluationError,
    Expression,
    ExpressionBudgetExceeded,
    ExpressionError,
    ExpressionTooCostly,
    Meter,
    References,
    Template,
    compile_expression,
    evaluate,
    find_templates,
)

MISSING = ErrorCode.MISSING_VARIABLE
COSTLY = ErrorCode.EXPRESSION_TOO_COSTLY
WRONG_TYPE = ErrorCode.INVALID_VARIABLE_TYPE
#: ``secrets`` is added only where secrets may be read (:mod:`.secret_placement`).
NODE_ROOTS = frozenset({"trigger", "nodes", "vars", "run"})
DEFINITION_ROOTS = frozenset({"trigger", "vars", "run"})
TRIGGER_FIELDS = ("kind", "data", "headers", "event")
RUN_FIELDS = ("id", "attempt", "started_at")

#: Which parameters of each node type are bare expressions (and what they must give) or
#: literals, and where secrets may be read: :data:`flowmesh_proto.catalog.NODE_KINDS`.
_SLOT_WANTS: Mapping[Slot, str] = {
    "bool": "a boolean",
    "list": "a list",
    "case": "a string or an integer",
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may read where it stands, and the code for one that does not compile."""

    roots: frozenset[str]
    node_id: str | None = None
    code: ErrorCode = ErrorCode.INVALID_NODES


@dataclass
class ReferenceCheck:
    graph: Graph
    declared_vars: frozenset[str] | None
    known_secrets: frozenset[str] | None
    max_length: int
    problems: Problems
    limits: Limits
    secret_refs: set[str] = field(default_factory=set)
    #: What evaluating constant expressions may spend, for the whole definition.
    constants: Meter = field(init=False)

    def __post_init__(self) -> None:
        self.constants = Meter(self.limits.expression_budget)

    def node(self, entry: NodeEntry) -> None:
        """Every expression and template in one decoded node's parameters."""
        if entry.node is None or not isinstance(entry.raw, dict):
            return
        path = f"{entry.path}.parameters"
        scope = Scope(NODE_ROOTS, entry.id)
        self._parameters(path, node_type(entry.node), entry.raw.get("parameters", {}), scope)
        template = entry.node.parameters.node if isinstance(entry.node, MapNode) else None
        kind = NODE_KINDS.get(template.type) if template is not None else None
        if template is not None and kind is not None and kind.in_map:
            inner = replace(scope, roots=NODE_ROOTS | {"item", "index"})
            self._parameters(f"{path}.node.parameters", template.type, template.parameters, inner)

    def definition(self, fields: Mapping[str, Any], triggers: list[tuple[int, Trigger]]) -> None:
        """The concurrency key and the event trigger filters."""
        failed = ErrorCode.VALIDATION_FAILED
        concurrency = fields.get("concurrency")
        if concurrency is not None:
            scope = Scope(DEFINITION_ROOTS, code=failed)
            self.expression("concurrency.key", concurrency.key, scope)
        for index, trigger in triggers:
            if isinstance(trigger, EventTrigger) and trigger.filter is not None:
                scope = Scope(frozenset({"event"}), code=failed)
                self.expression(f"triggers[{index}].filter", trigger.filter, scope, slot="bool")

    def expression(self, path: str, source: str, scope: Scope, slot: Slot | None = None) -> None:
        """Check one bare CEL expression; ``slot`` names the type its place needs."""
        if len(source) > self.max_length:
            self.problems.add(path, scope.code, f"longer than {self.max_length} characters")
            return
        try:
            expression = compile_expression(source)
        except ExpressionError as exc:
            code = COSTLY if isinstance(exc, ExpressionTooCostly) else scope.code
            self.problems.add(path, code, exc.reason)
            return
        self._references(path, expression.references, scope)
        if self._affordable(path, expression) and slot is not None:
            self._slot(path, expression, slot, scope)

    def _parameters(self, path: str, type_name: str, parameters: Any, scope: Scope) -> None:
        if not isinstance(parameters, dict):
            return
        kind = NODE_KINDS[type_name]
        for name, slot in kind.bare.items():
            source = parameters.get(name)
            if isinstance(source, str):
                roots = scope.roots | kind.bare_roots
                self.expression(f"{path}.{name}", source, replace(scope, roots=roots), slot)
        skipped = kind.bare.keys() | kind.literal
        rest = {key: value for key, value in parameters.items() if key not in skipped}
        for key, value in rest.items():
            inner = scope
            if secrets_allowed(type_name, key):
                inner = replace(scope, roots=scope.roots | {SECRETS})
            for suffix, found in find_templates({key: value}):
                self._template(path + suffix, found, inner)
                if inner is not scope:
                    refuse_computed_secrets(path + suffix, found, self.problems)
                if inner is not scope and key == "url":
                    refuse_secret_before_path(path + suffix, found, self.problems)

    def _template(self, path: str, found: Template | ExpressionError, scope: Scope) -> None:
        if isinstance(found, ExpressionError):
            code = COSTLY if isinstance(found, ExpressionTooCostly) else scope.code
            self.problems.add(path, code, str(found))
            return
        for expression in found.expressions:
            if len(expression.source) > self.max_length:
                self.problems.add(path, scope.code, f"longer than {self.max_length} characters")
            else:
                self._references(path, expression.references, scope)
                self._affordable(path, expression)

    def _affordable(self, path: str, expression: Expression) -> bool:
        """Whether the expression's cost is bounded as the limits say (DESIGN section 12):
        the comprehension nesting, literal sizes, building, and its cost on the least data."""
        cost, limits = expression.cost, self.limits
        problem = None
        if cost.depth > limits.max_comprehension_nesting:
            problem = (
                f"comprehensions nest {cost.depth} deep, at most "
                f"{limits.max_comprehension_nesting} (each level multiplies the work)"
            )
        elif cost.literal_items > limits.max_literal_items:
            problem = (
                f"a literal list or map of {cost.literal_items} items, "
                f"at most {limits.max_literal_items}"
            )
        elif cost.builds > limits.max_builds:
            problem = f"{cost.builds} '+' in one expression, at most {limits.max_builds}"
        elif cost.units(1) > limits.expression_budget:
            problem = (
                f"costs about {cost.units(1):,.0f} units even on the least data, more than "
                f"the budget of {limits.expression_budget:,} units of one step"
            )
        if problem is not None:
            self.problems.add(path, COSTLY, problem)
        return problem is None

    def _references(self, path: str, refs: References, scope: Scope) -> None:
        for name in sorted(refs.variables - scope.roots):
            if name == SECRETS:
                refuse_secret(path, self.problems)
                continue
            available = ", ".join(sorted(scope.roots))
            self.problems.add(path, MISSING, f"unknown variable {shown(name)}; here: {available}")
        for root, example in (("nodes", "nodes.<id>.output"), ("secrets", "secrets.API_TOKEN")):
            if root in scope.roots and root in refs.whole_values:
                message = f"{root} is not a value: select one member by name, like {example}"
                self.problems.add(path, WRONG_TYPE, message)
        if "nodes" in scope.roots:
            for node_id, member in sorted(refs.nodes, key=repr):
                self._node_reference(path, node_id, member, scope)
        if "secrets" in scope.roots:
            self._secrets(path, refs.secrets)
        if "vars" in scope.roots and self.declared_vars is not None:
            for name in sorted(refs.vars - self.declared_vars):
                self.problems.add(path, MISSING, f"vars.{name} is not declared in vars")
        for root, names, known in (
            ("trigger", refs.trigger_fields, TRIGGER_FIELDS),
            ("run", refs.run_fields, RUN_FIELDS),
        ):
            if root in scope.roots:
                for name in sorted(set(names) - set(known)):
                    fields = ", ".join(known)
                    self.problems.add(path, MISSING, f"{root} has {fields}; not {shown(name)}")

    def _node_reference(self, path: str, node_id: str, member: str | None, scope: Scope) -> None:
        if node_id not in self.graph.ids:
            self.problems.add(path, MISSING, f"no node has id {shown(node_id)}")
            return
        if node_id == scope.node_id:
            self.problems.add(path, MISSING, "a node cannot read its own output")
        elif scope.node_id is None or not self.graph.is_upstream(node_id, scope.node_id):
            message = f"node {node_id!r} is not upstream of {scope.node_id!r}: no edges lead here"
            self.problems.add(path, MISSING, message)
        if member not in (None, "output"):
            self.problems.add(path, MISSING, f"nodes.{node_id} has output, not {shown(member)}")

    def _secrets(self, path: str, names: frozenset[str]) -> None:
        for name in sorted(names):
            if not is_secret_name(name):
                message = f"{shown(name)} is not a secret name ({SECRET_NAME_PATTERN})"
                self.problems.add(path, MISSING, message)
                continue
            self.secret_refs.add(name)
            if self.known_secrets is not None and name not in self.known_secrets:
                self.problems.add(path, MISSING, f"no secret named {name!r}")

    def _slot(self, path: str, expression: Expression, slot: Slot, scope: Scope) -> None:
        """A constant expression (no variables, no comprehension) is evaluated to check its type."""
        if not expression.is_constant or expression.references.uses_macros:
            return
        try:
            value = evaluate(expression, {}, self.constants)
        except ExpressionBudgetExceeded:
            return  # one definition's checks spend one budget at most: the run will judge
        except EvaluationError as exc:
            self.problems.add(path, scope.code, f"always fails: {exc.reason}")
            return
        fits = {
            "bool": isinstance(value, bool),
            "list": isinstance(value, list),
            "case": isinstance(value, str | int) and not isinstance(value, bool),
        }[slot]
        if not fits:
            wanted = _SLOT_WANTS[slot]
            self.problems.add(path, WRONG_TYPE, f"always {shown(value)}, but {wanted} is needed")
