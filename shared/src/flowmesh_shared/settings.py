"""Settings: one frozen Struct per service, read once from the environment.

Every field ``foo_bar`` of a settings Struct is read from ``<PREFIX>_FOO_BAR`` (for example
``FLOWMESH_REGISTRY_DATABASE_URL``). A field that is itself a Struct is read the same way
one level down (``<PREFIX>_<FIELD>_<SUBFIELD>``). Values are strings converted to the
field's type:

- ``int``, ``float``, ``str``; ``bool`` from ``true/false``, ``1/0``, ``yes/no``, ``on/off``;
- ``timedelta`` from seconds (``30``, ``0.5``) or ISO 8601 (``PT1H``, ``P1D``);
- lists, tuples and sets as comma-separated items (``a,b,c``; empty means empty);
- ``X | None`` from an empty string as ``None``;
- ``Literal`` and enums by value.

Fallback rule: a few settings shared by the whole stack may also come from their common,
unprefixed name when the prefixed variable is not set (see :data:`COMMON_NAMES`):
``NATS_URL``, ``DATABASE_URL`` and ``OTEL_SERVICE_NAME``. The prefixed variable always wins.

A value that does not convert raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import enum
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

#: Settings that may come from an unprefixed, stack-wide variable (the prefixed one wins).
COMMON_NAMES: Mapping[str, str] = {
    "nats_url": "NATS_URL",
    "database_url": "DATABASE_URL",
    "otel_service_name": "OTEL_SERVICE_NAME",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SEQUENCES = (list, tuple, set, frozenset)

LogFormat = Literal["auto", "json", "console"]


class SettingsError(ValueError):
    """A setting from the environment has a value that cannot be used."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {message}")


class CommonSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every service reads; a service's settings subclass this."""

    nats_url: str = "nats://127.0.0.1:4222"
    """The NATS server(s) to connect to (comma-separated URLs)."""
    subject_prefix: str = "fm"
    """The first token of every subject (``fm.<tenant>.runs.<run_id>``, ``fm.rpc.>``)."""
    stream_prefix: str = "FM"
    """The prefix of every stream and key-value bucket name (``FM_RUN_EVENTS``)."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning``, ``error`` or ``critical``."""
    log_format: LogFormat = "auto"
    """``json`` (one object a line), ``console``, or ``auto``: JSON unless stdout is a terminal."""
    http_host: str = "127.0.0.1"
    """The address the HTTP server listens on (``0.0.0.0`` for every interface)."""
    http_port: int = 0
    """The port of /healthz, /readyz and /metrics; 0 picks a free one."""
    rpc_timeout: float = 5.0
    """Seconds an RPC caller waits for a reply."""
    shutdown_timeout: float = 10.0
    """Seconds in-flight work may take to finish once a stop is asked for."""
    otel_service_name: str = ""
    """The service name of traces; empty means ``flowmesh-<service>``. Traces are exported
    only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set."""


def load_settings(cls: type[S], prefix: str, environ: Mapping[str, str] | None = None) -> S:
    """Read ``cls`` from ``environ`` (default ``os.environ``) under ``prefix``."""
    env = os.environ if environ is None else environ
    return _load(cls, prefix.rstrip("_").upper(), env, top=True)


def variable_name(prefix: str, field: str) -> str:
    """The variable that holds ``field`` under ``prefix``."""
    return f"{prefix}_{field.upper()}" if prefix else field.upper()


def _load(cls: type[S], prefix: str, env: Mapping[str, str], *, top: bool) -> S:
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        name = variable_name(prefix, field.name)
        if _is_struct(field.type):
            if any(key.startswith(f"{name}_") for key in env):
                values[field.name] = _load(field.type, name, env, top=False)
            continue
        raw = env.get(name)
        if raw is None and top and field.name in COMMON_NAMES:
            name = COMMON_NAMES[field.name]
            raw = env.get(name)
        if raw is not None:
            values[field.name] = convert(raw, field.type, name)
    try:
        return cls(**values)
    except (TypeError, ValueError, msgspec.ValidationError) as exc:
        raise SettingsError(prefix or cls.__name__, str(exc)) from exc


def convert(raw: str, kind: Any, variable: str) -> Any:
    """Convert one variable's text to ``kind``; :class:`SettingsError` names ``variable``."""
    try:
        return msgspec.convert(_prepare(raw.strip(), kind), kind, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        message = str(exc).split(" - at `", 1)[0].replace(", got `str`", "")
        if typing.get_origin(kind) is Literal:
            message = f"expected one of {', '.join(map(str, typing.get_args(kind)))}"
        raise SettingsError(variable, f"cannot use {raw!r}: {message}") from exc


def _prepare(text: str, kind: Any) -> Any:
    """Shape the text so that msgspec's lax conversion gives ``kind``."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if _is_optional(kind):
        if text == "" or text.lower() in ("none", "null"):
            return None
        return _prepare(text, args[0]) if len(args) == 1 else text
    origin = typing.get_origin(kind) or kind
    if origin in _SEQUENCES:
        item = args[0] if args else str
        return [_prepare(part.strip(), item) for part in text.split(",") if part.strip()]
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("Expected a boolean (true/false, 1/0, yes/no, on/off)")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _enum_value(text, kind)
    return text


def _enum_value(text: str, kind: type[enum.Enum]) -> Any:
    for member in kind:
        if str(member.value) == text or member.name.lower() == text.lower():
            return member.value
    return text


def _is_optional(kind: Any) -> bool:
    origin = typing.get_origin(kind)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)
