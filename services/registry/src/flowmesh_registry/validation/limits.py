"""The size limits of one definition: what :mod:`flowmesh_registry.validate` and its parts
check against (re-exported there)."""

from __future__ import annotations

import msgspec

from flowmesh_shared.expressions import DEFAULT_BUDGET


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Size limits of one definition (settings of the registry)."""

    max_nodes: int = 500
    max_edges: int = 2000
    max_bytes: int = 256 * 1024
    max_expression_length: int = 4096
    max_depth: int = 64
    #: Expression cost (DESIGN section 12): comprehensions inside comprehensions, items of
    #: one literal list or map, ``+`` in one expression, and the units an expression may
    #: cost on the least data (more can never run within the executors' budget).
    max_comprehension_nesting: int = 2
    max_literal_items: int = 512
    max_builds: int = 64
    expression_budget: int = DEFAULT_BUDGET
    #: The tenant's own actions (distinct name and version) one definition may name: each is
    #: read and its input schema compiled whenever the definition is validated.
    max_tenant_actions: int = 64
