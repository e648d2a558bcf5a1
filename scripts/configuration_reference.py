"""Write docs/configuration.md: every environment variable of every service, from the
settings classes themselves (their fields, types, defaults and field docs).

    uv run python scripts/configuration_reference.py           # (re)write the file
    uv run python scripts/configuration_reference.py --check   # exit 1 when it is stale

A field's description is its attribute docstring (a string right after it) or its ``#:``
comment (the lines right above it), from the class that declares it or, failing that, from
the class it overrides. A test fails when the committed file differs from this output, and
when a field has no description.
"""

from __future__ import annotations

import ast
import enum
import inspect
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec

from flowmesh_executor import settings as executor
from flowmesh_gateway import settings as gateway
from flowmesh_registry import settings as registry
from flowmesh_scheduler import settings as scheduler
from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import COMMON_NAMES, CommonSettings, variable_name

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "configuration.md"
COMMAND = "uv run python scripts/configuration_reference.py"


@dataclass(frozen=True)
class Service:
    name: str
    settings: type[msgspec.Struct]
    prefix: str
    what: str


SERVICES = (
    Service(
        "registry",
        registry.RegistrySettings,
        registry.ENV_PREFIX,
        "owns PostgreSQL; serves `fm.rpc.registry.<op>`; projects run events into run history",
    ),
    Service(
        "gateway",
        gateway.GatewaySettings,
        gateway.ENV_PREFIX,
        "the public HTTP API (authentication, rate limits, runs, SSE, webhooks, events)",
    ),
    Service(
        "executor",
        executor.ExecutorSettings,
        executor.ENV_PREFIX,
        "runs workflows from the run-request work queue",
    ),
    Service(
        "scheduler",
        scheduler.SchedulerSettings,
        scheduler.ENV_PREFIX,
        "cron triggers, delayed runs, event triggers, durable timers, parked runs",
    ),
)

#: Descriptions of :class:`StreamLimits` fields that carry no doc of their own, by pattern:
#: ``<stream>_max_age``, ``<stream>_max_bytes``, ``<stream>_duplicate_window``.
_STREAMS = {
    "run_requests": "RUN_REQUESTS",
    "run_events": "RUN_EVENTS",
    "events": "EVENTS",
    "tasks": "TASKS",
    "registry": "REGISTRY",
    "timers": "TIMERS",
}
_LIMITS = {
    "max_age": "How long `{stream}` keeps a message (0: no age limit).",
    "max_bytes": "Bytes `{stream}` holds at most; the oldest messages go first (-1: no limit).",
    "duplicate_window": (
        "How long `{stream}` remembers a `Nats-Msg-Id`: a message published again with the"
        " same id within it is stored once. At most the stream's max age."
    ),
}
_STREAM_FIELDS = {
    "max_msg_size": "The largest message every stream accepts, in bytes (-1: the server's limit).",
    "replicas": "Replicas of every stream and key-value bucket created (1 without a cluster).",
    "storage": "Where streams and key-value buckets keep messages: `file` or `memory`.",
}


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the field it sets, and how to write it."""

    name: str
    field: str
    kind: Any
    default: Any
    description: str
    fallback: str | None = None
    #: The nested settings Struct field this variable belongs to (``streams``), if any.
    group: str | None = None

    @property
    def type_text(self) -> str:
        return type_text(self.kind)

    @property
    def default_text(self) -> str:
        """The default as one would write it in the variable (``""`` for empty)."""
        return value_text(self.default)


def variables(
    cls: type[msgspec.Struct], prefix: str, *, group: str | None = None
) -> list[Variable]:
    """Every variable ``cls`` reads under ``prefix``, nested Structs expanded in place."""
    found: list[Variable] = []
    docs = field_docs(cls)
    defaults = cls()
    for field in msgspec.structs.fields(cls):
        name = variable_name(prefix, field.name)
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            found.extend(variables(field.type, name, group=field.name))
            continue
        fallback = COMMON_NAMES.get(field.name) if group is None else None
        found.append(
            Variable(
                name=name,
                field=field.name,
                kind=field.type,
                default=getattr(defaults, field.name),
                description=docs.get(field.name) or _derived_doc(cls, field.name),
                fallback=fallback,
                group=group,
            )
        )
    return found


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> description, from ``cls`` and its bases (the most derived doc wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, msgspec.Struct) or not issubclass(klass, msgspec.Struct):
            continue
        docs.update(_class_docs(klass))
    return docs


@cache
def _class_docs(klass: type) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(klass))
    lines = source.splitlines()
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    docs: dict[str, str] = {}
    for index, stmt in enumerate(node.body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        after = node.body[index + 1] if index + 1 < len(node.body) else None
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            text = inspect.cleandoc(after.value.value)
        else:
            text = _comment_above(lines, stmt.lineno - 1)
        if text:
            docs[stmt.target.id] = " ".join(text.replace("``", "`").split())
    return docs


def _comment_above(lines: list[str], line: int) -> str:
    """The ``#:`` comment block right above ``lines[line]`` (0-based), or ``""``."""
    block: list[str] = []
    index = line - 1
    while index >= 0 and lines[index].strip().startswith("#:"):
        block.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(block)


def _derived_doc(cls: type, field: str) -> str:
    if cls is not StreamLimits:
        return ""
    if field in _STREAM_FIELDS:
        return _STREAM_FIELDS[field]
    for key, stream in _STREAMS.items():
        limit = field.removeprefix(f"{key}_")
        if limit != field and limit in _LIMITS:
            return _LIMITS[limit].format(stream=f"FM_{stream}")
    return ""


def type_text(kind: Any) -> str:
    """A reader's name for a settings type."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return " or ".join(type_text(arg) for arg in rest) + " (empty: none)"
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_text(args[0]) if args else 'string'} (comma-separated)"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in kind)
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if kind in names:
        return names[kind]
    if kind is timedelta:
        return "duration"
    raise TypeError(f"no reader's name for settings type {kind!r}")


def value_text(value: Any) -> str:
    """``value`` as it would be written in an environment variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(value_text(item) for item in value)
    if value is None:
        return ""
    return str(value)


def iso_duration(value: timedelta) -> str:
    """An ISO 8601 duration (``P7D``, ``PT2M``, ``PT0.5S``) the settings loader reads back."""
    days, seconds, micros = value.days, value.seconds, value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if secs or micros:
        time += f"{secs + micros / 1_000_000:g}S"
    if not days and not time:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def render() -> str:
    """The whole of docs/configuration.md."""
    parts = [HEADER.format(command=COMMAND), _common_section()]
    for service in SERVICES:
        parts.append(_service_section(service))
    return "\n".join(parts).rstrip("\n") + "\n"


def _common_section() -> str:
    rows = ", ".join(f"`{name}`" for name in COMMON_NAMES.values())
    common = len(msgspec.structs.fields(CommonSettings))
    return COMMON.format(common_names=rows, common_count=common)


def _service_section(service: Service) -> str:
    found = variables(service.settings, service.prefix)
    cls = service.settings
    lines = [
        f"## {service.name}",
        "",
        f"`python -m flowmesh_{service.name}`: {service.what}.",
        f"Settings class `{cls.__module__}.{cls.__qualname__}`; {len(found)} variables.",
        "",
        *_table([v for v in found if v.group is None]),
    ]
    docs = field_docs(cls)
    for group in dict.fromkeys(v.group for v in found if v.group is not None):
        assert group is not None
        prefix = variable_name(service.prefix, group)
        lines += [
            f"### {service.name}: `{prefix}_*`",
            "",
            docs.get(group, ""),
            "",
            *_table([v for v in found if v.group == group]),
        ]
    return "\n".join(lines)


def _table(found: list[Variable]) -> list[str]:
    lines = ["| variable | type | default | description |", "|---|---|---|---|"]
    for variable in found:
        default = variable.default_text
        shown = f"`{default}`" if default else "(empty)"
        description = variable.description
        if variable.fallback:
            description += f" Falls back to `{variable.fallback}` when unset."
        lines.append(
            f"| `{variable.name}` | {_cell(variable.type_text)} | {_cell(shown)} |"
            f" {_cell(description)} |"
        )
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


HEADER = """\
<!-- Generated by scripts/configuration_reference.py from the settings classes: do not edit.
     Regenerate with `{command}`; a unit test fails when this file is stale. -->

# Configuration reference

Every service reads its settings once, at start, from environment variables (there is no
configuration file): one frozen settings class per service (`flowmesh_<service>/settings.py`,
built on `flowmesh_shared.settings.CommonSettings`). The tables below are generated from
those classes: every variable, its type, its default and what it does.
"""

COMMON = """\
## How variables are read

- **Names.** A field `foo_bar` of a service's settings is read from `<PREFIX>_FOO_BAR`, the
  prefix being the service's (`FLOWMESH_REGISTRY`, `FLOWMESH_GATEWAY`, `FLOWMESH_EXECUTOR`,
  `FLOWMESH_SCHEDULER`). A field that is itself a group of settings is read one level down:
  `streams.replicas` of the registry is `FLOWMESH_REGISTRY_STREAMS_REPLICAS`.
- **Stack-wide fallbacks.** {common_names} are read, unprefixed, when the service's own
  variable is not set (the prefixed one always wins): one `NATS_URL` can serve the whole
  stack. Only top-level fields fall back.
- **Values** are text converted to the field's type:
  - `integer`, `number`, `string` as written;
  - `boolean`: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case);
  - `duration`: seconds (`30`, `0.5`) or an ISO 8601 duration (`PT1H`, `P1D`, `PT0.5S`);
  - lists: comma-separated items (`a.pem,b.pem`; empty means an empty list);
  - `one of ...`: exactly one of the values listed.
- **Errors.** A value that does not convert stops the service at start with an error naming
  the variable (`FLOWMESH_GATEWAY_MAX_WAIT: cannot use 'soon': ...`); so do settings that
  contradict each other (a stream's duplicate window longer than its max age, a secrets
  key that is not base64 of 32 bytes).
- **Stream limits.** The registry, the executor and the scheduler each create the streams
  at start, or update them to their own `..._STREAMS_*` values (retention and storage
  cannot change in place: a difference there stops the start): give the three the same
  values. The gateway's `..._STREAMS_*` settle the storage and replicas of the key-value
  buckets it creates, and its `..._STREAMS_MAX_MSG_SIZE` bounds what it publishes.
- **Read elsewhere.** Tracing is exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
  (the OpenTelemetry exporter reads it and its companions itself). `make dev` has variables
  of its own (`FLOWMESH_HOME`, `FLOWMESH_GATEWAY_PORT`, `FLOWMESH_ADMIN_TOKEN`: see the
  README).

The first {common_count} rows of each service's main table are the settings every service shares
(`CommonSettings`); a service may give one a default of its own (`HTTP_PORT`).
"""


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded
    from generated_file import write_or_check

    description = (__doc__ or "").splitlines()[0]
    return write_or_check(description, render, OUTPUT, ROOT, COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
