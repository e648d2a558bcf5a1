"""The reference documents in docs/ match the code they describe: a stale one fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import typing
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from flowmesh_proto import asyncapi, headers
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.registry import OPERATIONS
from flowmesh_proto.runs import RunEvent
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_proto.tasks import REPLY_TO
from flowmesh_shared.settings import convert

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """A module of scripts/ (outside every package), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _script("configuration_reference")
SERVICES = {service.name: service for service in reference.SERVICES}


# --- docs/configuration.md ---------------------------------------------------------------


def test_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference.render(), (
        f"docs/configuration.md is stale: run `{reference.COMMAND}` and commit it"
    )


def _leaf_fields(cls: type[msgspec.Struct]) -> int:
    """How many variables a settings class reads: its fields, nested Structs expanded."""
    count = 0
    for field in msgspec.structs.fields(cls):
        nested = isinstance(field.type, type) and issubclass(field.type, msgspec.Struct)
        count += _leaf_fields(field.type) if nested else 1
    return count


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_field_of_every_settings_class_is_a_documented_row(name: str) -> None:
    service = SERVICES[name]
    found = reference.variables(service.settings, service.prefix)
    assert len(found) == _leaf_fields(service.settings) > 20
    assert len({variable.name for variable in found}) == len(found)
    assert [v.name for v in found if not v.description.strip()] == [], (
        "give these fields a docstring (or a #: comment) in their settings class"
    )
    rows = [
        line for line in reference.render().splitlines() if line.startswith(f"| `{service.prefix}_")
    ]
    documented = [row.split("`")[1] for row in rows]
    assert sorted(documented) == sorted(variable.name for variable in found)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_documented_defaults_read_back_as_the_defaults(name: str) -> None:
    """What the table shows as a default, set as the variable, gives the default itself."""
    service = SERVICES[name]
    for variable in reference.variables(service.settings, service.prefix):
        value = convert(variable.default_text, variable.kind, variable.name)
        assert value == variable.default, variable.name


def test_common_fallbacks_are_documented_on_top_level_variables_only() -> None:
    found = reference.variables(SERVICES["registry"].settings, SERVICES["registry"].prefix)
    fallbacks = {v.name: v.fallback for v in found if v.fallback}
    assert fallbacks == {
        "FLOWMESH_REGISTRY_NATS_URL": "NATS_URL",
        "FLOWMESH_REGISTRY_DATABASE_URL": "DATABASE_URL",
        "FLOWMESH_REGISTRY_OTEL_SERVICE_NAME": "OTEL_SERVICE_NAME",
    }
    assert "FLOWMESH_REGISTRY_STREAMS_REPLICAS" in {v.name for v in found}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=0.5), "PT0.5S"),
        (timedelta(minutes=2), "PT2M"),
        (timedelta(hours=24), "P1D"),
        (timedelta(days=366), "P366D"),
        (timedelta(days=1, hours=2, seconds=3), "P1DT2H3S"),
    ],
)
def test_durations_are_written_as_iso_8601(value: timedelta, text: str) -> None:
    assert reference.iso_duration(value) == text
    assert convert(text, timedelta, "X") == value


def test_the_check_mode_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    monkeypatch.setattr(reference, "OUTPUT", stale)
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.main(["--check"]) == 1
    assert reference.COMMAND in capsys.readouterr().err
    assert reference.main([]) == 0
    assert reference.main(["--check"]) == 0


# --- proto/schemas/asyncapi.json ---------------------------------------------------------
# (Its staleness is tested with the other generated schemas, in test_proto.py.)

ASYNCAPI = asyncapi.document()


def _pointer(document: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_asyncapi_every_ref_resolves_inside_the_document() -> None:
    refs = _refs(ASYNCAPI)
    assert len(refs) > 300
    for ref in sorted(set(refs)):
        _pointer(ASYNCAPI, ref)


def test_asyncapi_every_channel_parameter_is_in_its_address_and_back() -> None:
    for key, channel in ASYNCAPI["channels"].items():
        address = channel["address"]
        named = set(re.findall(r"\{([^}]+)\}", address or ""))
        assert set(channel.get("parameters", {})) == named, key
        if address is not None:
            assert address.startswith("fm."), key
            assert address.startswith("fm.rpc.") == key.startswith("registry."), key


def test_asyncapi_operations_name_their_own_channels_messages() -> None:
    for key, operation in ASYNCAPI["operations"].items():
        assert operation["action"] in ("send", "receive"), key
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), key
        reply = operation.get("reply")
        if reply is not None:
            for message in reply["messages"]:
                assert message["$ref"].startswith(f"{reply['channel']['$ref']}/messages/"), key


def test_asyncapi_component_and_channel_keys_are_valid_identifiers() -> None:
    keys = [
        *ASYNCAPI["channels"],
        *ASYNCAPI["operations"],
        *ASYNCAPI["components"]["messages"],
        *ASYNCAPI["components"]["schemas"],
    ]
    assert [key for key in keys if not re.fullmatch(r"[A-Za-z0-9._-]+", key)] == []


def test_asyncapi_covers_every_subject_and_message_of_the_contract() -> None:
    channels = ASYNCAPI["channels"]
    subjects = Subjects("fm")
    assert channels["runRequests"]["address"] == "fm.{tenant}.requests.runs"
    assert channels["runEvents"]["address"] == "fm.{tenant}.runs.{run_id}"
    assert channels["triggerEvents"]["address"] == "fm.{tenant}.events.{type}"
    assert channels["tasks"]["address"] == "fm.{tenant}.tasks.{queue}"
    assert channels["control"]["address"] == "fm.{tenant}.control.{run_id}"
    assert channels["workflowChanged"]["address"] == "fm.{tenant}.registry.workflow.changed"
    assert channels["timers"]["address"] == "fm.{tenant}.timers.{purpose}"
    for op in OPERATIONS:
        assert channels[f"registry.{op}"]["address"] == subjects.rpc("registry", op)
    kinds = {kind.__struct_config__.tag for kind in typing.get_args(RunEvent)}
    messages = ASYNCAPI["components"]["messages"]
    names = {messages[ref.split("/")[-1]]["name"] for ref in _refs(channels["runEvents"])}
    assert names == kinds == set(asyncapi.RUN_EVENTS)


def test_asyncapi_schemas_keep_to_the_asyncapi_schema_object() -> None:
    """msgspec writes OpenAPI-style discriminator objects; AsyncAPI's is a property name."""
    text = json.dumps(ASYNCAPI)
    assert '"discriminator"' not in text
    assert '"$defs"' not in text


# --- docs/http-api.md --------------------------------------------------------------------

HTTP_API = (ROOT / "docs" / "http-api.md").read_text()
OPENAPI = json.loads((ROOT / "services" / "gateway" / "openapi.json").read_text())
TENANT_BASE = "/api/v1/{tenant}"


def _template(path: str) -> re.Pattern[str]:
    """An OpenAPI path as a pattern: ``{x}`` stands for any one segment."""
    return re.compile(
        "".join(
            "[^/]+" if p.startswith("{") else re.escape(p) for p in re.split(r"(\{[^}]+\})", path)
        )
    )


def _operation(method: str, path: str) -> dict[str, Any] | None:
    for template, operations in OPENAPI["paths"].items():
        if _template(template).fullmatch(path) and method.lower() in operations:
            found: dict[str, Any] = operations[method.lower()]
            return found
    return None


def _absolute(path: str) -> str:
    return (
        path
        if path.startswith(("/api/", "/console/", "/healthz", "/readyz", "/metrics", "/openapi"))
        else TENANT_BASE + path
    )


def test_every_method_and_path_in_the_http_guide_is_in_the_openapi_document() -> None:
    mentioned = re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)", HTTP_API)
    assert len(mentioned) > 60
    missing = [f"{m} {p}" for m, p in mentioned if _operation(m, _absolute(p)) is None]
    assert missing == [], "docs/http-api.md names operations the gateway does not have"


def test_every_curl_url_in_the_http_guide_is_in_the_openapi_document() -> None:
    urls = re.findall(r"\"(?:\$BASE|http://127\.0\.0\.1:8080/api/v1/demo)(/[^\"?]*)", HTTP_API)
    assert len(urls) > 10
    for path in urls:
        path = TENANT_BASE + path
        assert any(_template(t).fullmatch(path) for t in OPENAPI["paths"]), path


def test_the_endpoint_table_is_complete_and_its_roles_are_the_gateways() -> None:
    rows = re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/\S*)` \| ([a-z ]+) \|", HTTP_API, re.M)
    documented = set()
    for method, path, role in rows:
        operation = _operation(method, _absolute(path))
        assert operation is not None, f"{method} {path}"
        description = operation.get("description", "")
        if role in ("viewer", "operator", "editor", "admin"):
            assert f"Needs the {role} role." in description, f"{method} {path}"
        elif role == "platform admin":
            assert "platform admin token" in description, f"{method} {path}"
        elif role == "signature":
            assert "signature" in description, f"{method} {path}"
        elif role == "console session":
            assert operation.get("security") == [{"consoleSession": []}], f"{method} {path}"
        else:
            assert role == "none" and not operation.get("security"), f"{method} {path}"
        documented.add((method.lower(), _absolute(path)))
    every = {
        (method, path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert every - documented == set(), "add these to the endpoint table of docs/http-api.md"


def test_the_error_code_table_is_the_contracts() -> None:
    for code in ErrorCode:
        row = f"| `{code.name}` | {code.num} | {code.http_status} |"
        assert row in HTTP_API, f"docs/http-api.md: the row of {code.name} should read {row}"


# --- docs/events.md ----------------------------------------------------------------------

EVENTS = (ROOT / "docs" / "events.md").read_text()


def test_the_events_guide_describes_every_run_event_kind() -> None:
    for kind in typing.get_args(RunEvent):
        assert f"| `{kind.__struct_config__.tag}` |" in EVENTS, kind.__name__


def test_the_events_guide_describes_every_header() -> None:
    names = [value for name, value in vars(headers).items() if name.isupper()]
    for name in [*names, REPLY_TO]:
        assert f"`{name}`" in EVENTS, name


def test_the_events_guide_names_every_subject_and_stream() -> None:
    for channel in ASYNCAPI["channels"].values():
        address = channel["address"]
        if address is not None and not address.startswith("fm.rpc."):
            expected = re.sub(
                r"\{([a-z_]+)\}", lambda m: "<t>" if m[1] == "tenant" else f"<{m[1]}>", address
            )
            assert f"`{expected}`" in EVENTS, expected
    for stream in msgspec.structs.asdict(stream_names("FM")).values():
        assert f"`{stream}`" in EVENTS, stream
