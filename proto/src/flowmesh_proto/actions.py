"""Actions: named, versioned templates of an HTTP call over a connector (DESIGN section 16).

An action says what a step sends and how the answer becomes its output, given only the
step's ``input`` (checked against ``input_schema``). An ``action`` node names the action,
a connector (the base URL, the hosts and the credentials) and the input; the executor
renders :class:`ActionRequest` with the input and sends it as an ``http`` node through that
connector would be sent (retries, idempotency key, SSRF guard, limits, events), then reads
the answer with :class:`ActionResult`.

Templates in an action read ``input`` only (the request's strings) and ``input`` and
``response`` (the result's expressions): never ``secrets``, ``trigger``, ``steps`` or
``vars``. Credentials come from the connector alone.

Rendering the request: every string of ``path``, ``headers``, ``query`` and ``body`` may be
a template; a member of a map *written in the action* whose template renders to null is
left out (so an optional input member is sent only when given:
``"{{ has(input.thread_ts) ? input.thread_ts : null }}"``); nulls inside a rendered value
are kept.

The built-in actions are in :mod:`flowmesh_proto.action_library`; a tenant's own are
stored by the registry (``PUT /actions/{name}``), one immutable version per change.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from flowmesh_proto.connectors import AUTH_KINDS
from flowmesh_proto.ids import SECRET_NAME_PATTERN
from flowmesh_proto.operations import Request
from flowmesh_proto.versionref import VersionRef
from flowmesh_proto.workflow import ActionParameters, Definition, HttpMethod, MapNode

__all__ = [
    "ACTION_CATEGORIES",
    "ACTION_NAME_PATTERN",
    "Action",
    "ActionCategory",
    "ActionConnector",
    "ActionDelete",
    "ActionDeleted",
    "ActionGet",
    "ActionKey",
    "ActionList",
    "ActionPage",
    "ActionPut",
    "ActionRequest",
    "ActionResult",
    "ActionSpec",
    "ActionVersions",
    "action_refs",
]

#: An action's name: a word, or two joined by a dot (``slack.post_message``).
ACTION_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,62})?$"
#: The largest spec, as JSON: beyond it the spec is refused whole (422 at ``$``).
MAX_SPEC_BYTES = 64 * 1024
#: Actions (and versions of one action) one page lists at most.
MAX_PAGE = 100

ActionCategory = Literal["notification", "data", "ai", "integration"]
ACTION_CATEGORIES: tuple[str, ...] = get_args(ActionCategory)
AuthKind = Literal["none", "bearer", "basic", "header", "query", "oauth2_client_credentials"]
SecretName = Annotated[str, msgspec.Meta(pattern=SECRET_NAME_PATTERN)]
#: An action's key among a run's actions: its name and the version a node pins (None: the
#: current one; a built-in action has only that).
ActionKey = tuple[str, int | None]


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a spec's parts: immutable, unknown fields refused."""


class ActionRequest(_Spec, frozen=True, kw_only=True, omit_defaults=True):
    """The HTTP request an action sends through its connector; strings may be templates
    over ``input``."""

    method: HttpMethod = "POST"
    #: Relative to the connector's base URL (the connector path rule applies, rendered).
    path: str
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    #: Sent as JSON (a string as text, nothing when null), like an http node's body.
    body: Any = None
    #: The statuses that succeed; empty means 200-299.
    expect_status: list[int] = []


class ActionResult(_Spec, frozen=True, kw_only=True, omit_defaults=True):
    """How the answer (``response``: ``{status, headers, body}``) becomes the step's output
    or error; each a bare CEL expression over ``response`` and ``input``."""

    #: The step's output; ``response.body`` when null.
    output: str | None = None
    #: A boolean: an answer with an expected status that is still a failure (Slack's
    #: ``ok: false``); the step fails with ``ActionFailed``.
    failure: str | None = None
    #: A string: the failure's message, for a ``failure`` and for an unexpected status
    #: (``HttpStatus``); a short excerpt of the body when null or when it cannot be read.
    message: str | None = None


class ActionConnector(_Spec, frozen=True, kw_only=True, omit_defaults=True):
    """The connector an action is meant for: where its API lives and how it authenticates
    (a suggestion for the catalog and the docs; the node names the connector it uses)."""

    base_url: str
    auth: AuthKind = "none"
    #: The secret names the suggested connector's auth reads (the catalog's ``requires``).
    secrets: list[SecretName] = []
    #: For ``header`` or ``query`` auth: the header's or parameter's name.
    name: str | None = None


class ActionSpec(_Spec, frozen=True, kw_only=True, omit_defaults=True):
    """What ``PUT /actions/{name}`` takes (and what a built-in action is)."""

    description: Annotated[str, msgspec.Meta(max_length=2000)]
    category: ActionCategory = "integration"
    #: A JSON Schema (an object's) the node's input must match.
    input_schema: dict[str, Any]
    #: A JSON Schema of the step's output (``{}``: any).
    output_schema: dict[str, Any] = {}
    request: ActionRequest
    result: ActionResult = ActionResult()
    connector: ActionConnector | None = None
    #: A valid input, for the catalog's example and the docs.
    example: dict[str, Any] | None = None


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """An action as replies show it: a built-in one (``builtin``, version 1, no author) or
    one version of a tenant's."""

    name: str
    version: int
    builtin: bool
    spec: ActionSpec
    created_at: datetime | None = None
    created_by: str | None = None


class ActionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Action]
    next_cursor: str | None
    has_more: bool


class ActionDeleted(msgspec.Struct, frozen=True, kw_only=True):
    """The deleted action's name and the stored versions that named it, now ``invalid``."""

    name: str
    invalidated: list[VersionRef] = []


# --- the registry's operations (a tenant's own actions) -------------------------------------


class ActionPut(Request["Action"], frozen=True):
    """Create (version 1) or add the next version of the tenant's action ``name``."""

    operation = "action_put"

    name: str
    spec: ActionSpec


class ActionGet(Request["Action"], frozen=True):
    """A tenant's action: its current version, or ``version``."""

    operation = "action_get"

    name: str
    version: int | None = None


class ActionList(Request["ActionPage"], frozen=True):
    """The actions a tenant can use by name: the built-in ones and its own (current
    versions) merged, ``limit`` (1..100) a page (fewer when their specs are large)."""

    operation = "action_list"

    limit: int = 50
    cursor: str | None = None
    #: Only names after this one (the catalog's cursor); not with ``cursor``.
    after: str | None = None
    #: Only actions of this category.
    category: ActionCategory | None = None


class ActionVersions(Request["ActionPage"], frozen=True):
    """Every version of the tenant's action ``name``, newest first."""

    operation = "action_versions"

    name: str
    limit: int = 50
    cursor: str | None = None


class ActionDelete(Request["ActionDeleted"], frozen=True):
    """Delete the tenant's action ``name`` with every version."""

    operation = "action_delete"

    name: str


def action_refs(definition: Definition) -> Iterator[tuple[ActionKey, str]]:
    """Each action the definition's nodes (and maps' per-item nodes) name, with the
    connector named beside it."""
    for node in definition.nodes:
        parameters = node.parameters
        if isinstance(parameters, ActionParameters):
            yield (parameters.action, parameters.version), parameters.connector
        template = node.parameters.node if isinstance(node, MapNode) else None
        if template is not None and template.type == "action":
            try:
                item = msgspec.convert(template.parameters, ActionParameters, strict=True)
            except msgspec.ValidationError:
                continue  # the validator reports it; the executor fails the step
            yield (item.action, item.version), item.connector


def _check() -> None:
    if set(get_args(AuthKind)) != set(AUTH_KINDS):
        raise TypeError("flowmesh_proto.actions: AuthKind differs from the connectors' kinds")


_check()
