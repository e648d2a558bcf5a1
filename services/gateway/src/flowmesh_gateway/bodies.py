"""Reading requests: JSON bodies into Structs (unknown fields refused), documents, queries.

Every failure is a problem with a code and, where it has one, a path: a body of the wrong
type (415), too large (413), not JSON or not UTF-8 (400), or of the wrong shape (422).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.registry import ExportFormat
from flowmesh_proto.storable import unstorable_json
from flowmesh_shared.errors import FlowmeshError

T = TypeVar("T")

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_DECIMAL = re.compile(r"-?[0-9]{1,12}")
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def unprocessable(message: str, path: str = "$") -> FlowmeshError:
    item = ProblemItem(path=path, code=ErrorCode.VALIDATION_FAILED.name, message=message)
    return FlowmeshError(ErrorCode.VALIDATION_FAILED, message, errors=[item])


def _media_type(request: web.Request) -> str:
    return request.content_type.lower() if request.body_exists else ""


def _is_json(media_type: str) -> bool:
    return media_type in JSON_TYPES or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _raw_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise FlowmeshError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes"
        ) from exc
    if len(data) > limit:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body is larger than {limit} bytes")
    return data


async def json_body(request: web.Request, kind: type[T], limit: int, *, kept: bool = True) -> T:
    """The body as ``kind`` (a Struct, or ``Any`` for free JSON); JSON only. ``kept``: the
    body is to be stored, so what PostgreSQL cannot keep is refused (422 at its path)."""
    require_json(request)
    data = await _raw_body(request, limit)
    return decode_json(data, kind, kept=kept)


def require_json(request: web.Request, accepted: str = "application/json") -> None:
    """415 unless the body is ``application/json`` (or ``application/<...>+json``); the
    message names what is ``accepted``."""
    media_type = _media_type(request)
    if not _is_json(media_type):
        raise FlowmeshError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be {accepted}, not {media_type or 'missing'}",
        )


def is_yaml(request: web.Request) -> bool:
    """The body is a YAML document (:data:`YAML_TYPES`), to be read by the registry."""
    return _media_type(request) in YAML_TYPES


async def raw_body(request: web.Request, limit: int) -> bytes:
    """The body as sent, at most ``limit`` bytes (413 beyond)."""
    return await _raw_body(request, limit)


def decode_json(data: bytes, kind: type[T], root: str = "", *, kept: bool = True) -> T:
    """``data`` as ``kind``; 400 when it is not JSON, 422 at the path of what does not fit
    ``kind`` or cannot be stored (:func:`~flowmesh_proto.storable.unstorable`). Paths are
    the body's (``input.a``), or under ``root`` when the body is one value (``input``)."""
    try:
        value = msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        path = match.group("path").lstrip(".") if match and match.group("path") else ""
        raise unprocessable(_AT_PATH.sub("", message), _under(root, path)) from exc
    except msgspec.DecodeError as exc:
        raise FlowmeshError(ErrorCode.BAD_REQUEST, f"the body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec's error for bad UTF-8 inside a string
        raise FlowmeshError(ErrorCode.BAD_REQUEST, "the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise FlowmeshError(ErrorCode.BAD_REQUEST, "the body is nested too deeply") from exc
    found = unstorable_json(data, root) if kept else None
    if found is not None:
        raise unprocessable(found.reason, found.path)
    return value


def _under(root: str, path: str) -> str:
    if not root:
        return path or "$"
    return f"{root}{path}" if path.startswith("[") else f"{root}.{path}" if path else root


async def document_body(request: web.Request, limit: int) -> tuple[str, ExportFormat]:
    """An import document: (text, "json" | "yaml") by Content-Type."""
    media_type = _media_type(request)
    fmt: ExportFormat
    if _is_json(media_type):
        fmt = "json"
    elif media_type in YAML_TYPES:
        fmt = "yaml"
    else:
        raise FlowmeshError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "a workflow document is application/json or application/yaml",
        )
    data = await _raw_body(request, limit)
    try:
        return data.decode("utf-8"), fmt
    except UnicodeDecodeError as exc:
        raise FlowmeshError(ErrorCode.BAD_REQUEST, "the body is not valid UTF-8") from exc


def query_int(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not _DECIMAL.fullmatch(raw):  # int() would take "+5", " 5" and "1_0"
        raise unprocessable(f"{name} must be an integer", name)
    value = int(raw)
    if not low <= value <= high:
        raise unprocessable(f"{name} must be between {low} and {high}", name)
    return value


def path_int(request: web.Request, name: str) -> int:
    """A number in the path (``/versions/{n}``): digits, at most nine, else 422 at ``name``."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 9:
        raise unprocessable(f"{name} must be a positive integer", name)
    return int(raw)


def query_bool(request: web.Request, *names: str) -> bool | None:
    for name in names:
        raw = request.query.get(name)
        if raw is None or raw == "":
            continue
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise unprocessable(f"{name} must be true or false", name)
    return None


def query_duration(request: web.Request, name: str, maximum: timedelta) -> timedelta | None:
    """An ISO 8601 duration (``PT30S``, ``PT1.5S``, ``PT2M``) from 0 to ``maximum``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = msgspec.convert(raw, timedelta) if raw[:1] in ("P", "p") else None
    except msgspec.ValidationError:
        value = None
    if value is None or value < timedelta(0):
        raise unprocessable(f"{name} must be an ISO 8601 duration such as PT30S", name)
    if value > maximum:
        raise unprocessable(f"{name} must be at most {maximum.total_seconds():g} seconds", name)
    return value


def query_list(request: web.Request, name: str) -> list[str]:
    """``name=a,b`` and repeated ``name=a&name=b`` alike."""
    return [item for raw in request.query.getall(name, []) for item in raw.split(",") if item]


def etag(version: int) -> str:
    return f'"v{version}"'


def if_match_version(request: web.Request) -> int | None:
    """The version an ``If-Match`` header names (``"v3"``), None for none or ``*``; else 412."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    match = re.fullmatch(r'\s*(?:W/)?"v(\d{1,9})"\s*', raw)
    if match is None:
        raise FlowmeshError(
            ErrorCode.PRECONDITION_FAILED, "If-Match names no version of this workflow"
        )
    return int(match.group(1))


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value),
        status=status,
        content_type="application/json",
        headers=headers,
    )
