"""What a client sends is what is kept: through the real gateway and registry on real
PostgreSQL, what PostgreSQL cannot store (U+0000) is refused with 422 at its path in every
body (run input, event data, webhook bodies, definitions in each of their routes), never
accepted then lost nor answered 500; an explicit ``null`` input stays ``null``; YAML is
read as YAML 1.2."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import pytest_asyncio
import yaml
from nats.aio.client import Client as Nats

from flowmesh_proto.runs import RunQueued
from tests.helpers import until
from tests.integration.harness import new_tenant, simple_definition, unique

from .conftest import Client, Isolated
from .test_runs_control import Bus, execute
from .test_webhooks import a_hook

pytestmark = pytest.mark.integration

NUL = "\u0000"


@pytest.fixture
def bus(nc: Nats, isolated: Isolated) -> Bus:
    return Bus(nc, isolated.subjects, isolated.streams)


@pytest_asyncio.fixture(loop_scope="session")
async def client(isolated: Isolated) -> Client:
    """A tenant of the module's own stack: no executor takes its runs."""
    return Client(isolated.http, await new_tenant(isolated.registry, "b"))


def refused_at(status: int, body: Any, path: str, code: str = "VALIDATION_FAILED") -> None:
    assert status == 422, body
    assert body["code"] == code, body
    assert [item["path"] for item in body["errors"]] == [path], body
    assert "U+0000" in body["errors"][0]["message"], body


async def stored_run(client: Client, run_id: str) -> dict[str, Any]:
    """The run as the registry's history holds it (projected from its events)."""

    async def projected() -> Any:
        status, body, _ = await client("GET", f"/runs/{run_id}")
        return body if status == 200 else None

    found: dict[str, Any] = await until(projected)
    return found


# --- run input, event data, webhook bodies ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"input": {"a": {"b": f"x{NUL}y"}}}, "input.a.b"),
        ({"input": {"a": [1, {f"k{NUL}": 1}]}}, 'input.a[1]["k\\u0000"]'),
        ({"input": NUL}, "input"),
        ({"input": {}, "idempotency_key": f"k{NUL}"}, "idempotency_key"),
    ],
)
async def test_input_holding_nul_is_refused_at_its_path(
    client: Client, bus: Bus, body: Any, path: str
) -> None:
    workflow = await client.create(unique("nul"))
    status, answer, _ = await execute(client, workflow["id"], body)
    refused_at(status, answer, path)
    assert await bus.requests(client.tenant.id) == []  # nothing was started


async def test_a_text_nul_is_kept(client: Client, bus: Bus) -> None:
    """The six characters ``\\u0000`` (an escaped backslash) are text like any other."""
    workflow = await client.create(unique("text"))
    status, answer, _ = await execute(client, workflow["id"], {"input": {"a": "\\u0000"}})
    assert status == 202, answer
    run = await stored_run(client, answer["run_id"])
    assert run["input"] == {"a": "\\u0000"}


async def test_event_data_holding_nul_is_refused(client: Client) -> None:
    event = {"type": "order.created", "data": {"k": f"{NUL}"}}
    status, body, _ = await client("POST", "/events", json=event)
    refused_at(status, body, "data.k")
    event = {"type": "a.b", "source": NUL, "data": 1}
    status, body, _ = await client("POST", "/events", json=event)
    refused_at(status, body, "source")


async def test_a_webhook_body_holding_nul_is_refused(client: Client, bus: Bus) -> None:
    hook = await a_hook(client)
    status, body, _ = await hook.send({"order": {"id": f"1{NUL}"}})
    refused_at(status, body, "input.order.id")
    assert await bus.requests(client.tenant.id) == []


# --- null input ------------------------------------------------------------------------


async def test_an_explicit_null_input_stays_null(client: Client, bus: Bus) -> None:
    workflow = await client.create(unique("null"), input_schema={"type": "null"})
    status, answer, _ = await execute(client, workflow["id"], {"input": None})
    assert status == 202, answer
    (queued,) = await bus.events(client.tenant.id, answer["run_id"])
    assert isinstance(queued, RunQueued) and queued.input is None
    assert queued.trigger.data is None
    ((request, _),) = await bus.requests(client.tenant.id)
    assert request.input is None and request.trigger.data is None
    run = await stored_run(client, answer["run_id"])
    assert run["input"] is None and run["trigger"].get("data") is None
    # No input at all is {}, which this schema refuses: the schema sees what was sent.
    status, body, _ = await execute(client, workflow["id"])
    assert status == 422 and body["errors"][0]["path"] == "input", body
    status, body, _ = await execute(client, workflow["id"], {"version": 1})
    assert status == 422 and body["errors"][0]["path"] == "input", body


async def test_null_is_not_an_object(client: Client) -> None:
    workflow = await client.create(unique("object"), input_schema={"type": "object"})
    status, body, _ = await execute(client, workflow["id"], {"input": None})
    assert status == 422 and body["errors"][0]["path"] == "input", body
    status, body, _ = await execute(client, workflow["id"])
    assert status == 202, body


# --- definitions -----------------------------------------------------------------------


def _with_nul_at(name: str, where: str) -> tuple[dict[str, Any], str]:
    definition = simple_definition(name)
    match where:
        case "const":
            definition["input_schema"] = {"const": NUL}
            return definition, "input_schema.const"
        case "enum":
            definition["input_schema"] = {"enum": ["a", f"b{NUL}"]}
            return definition, "input_schema.enum[1]"
        case "vars":
            definition["vars"] = {"threshold": 100, f"k{NUL}": 1}
            return definition, 'vars["k\\u0000"]'
        case "tags":
            definition["tags"] = ["orders", NUL]
            return definition, "tags[1]"
        case "description":
            definition["description"] = f"a{NUL}"
            return definition, "description"
        case _:
            definition["nodes"][2]["parameters"] = {"x": NUL}
            return definition, "nodes[2].parameters.x"


WHERE = ["const", "enum", "vars", "tags", "description", "parameters"]


@pytest.mark.parametrize("where", WHERE)
async def test_a_definition_holding_nul_is_refused_on_every_route(
    client: Client, where: str
) -> None:
    name = unique("def")
    definition, path = _with_nul_at(name, where)
    status, body, _ = await client("POST", "/workflows", json=definition)
    refused_at(status, body, path)
    created = await client.create(name)
    status, body, _ = await client("PUT", f"/workflows/{created['id']}", json=definition)
    refused_at(status, body, path)
    status, body, _ = await client("PUT", f"/workflows/by-name/{name}", json=definition)
    refused_at(status, body, path)
    status, body, _ = await client(
        "POST",
        "/workflows/import",
        data=msgspec.json.encode({**definition, "name": unique("imp")}),
        headers={"Content-Type": "application/json"},
    )
    refused_at(status, body, path, "IMPORT_VALIDATION_FAILED")
    status, body, _ = await client("POST", "/workflows/validate", json=definition)
    assert status == 200 and body["valid"] is False, body
    assert [item["path"] for item in body["errors"]] == [path]
    status, body, _ = await client("GET", f"/workflows/{created['id']}")
    assert status == 200 and body["version"] == 1  # nothing else was stored


async def test_a_yaml_definition_holding_nul_is_refused(client: Client) -> None:
    document = yaml.safe_dump({**simple_definition(unique("yaml")), "input_schema": {"const": NUL}})
    assert '"\\0"' in document  # YAML's escape of U+0000
    status, body, _ = await client(
        "POST", "/workflows/import", data=document, headers={"Content-Type": "application/yaml"}
    )
    refused_at(status, body, "input_schema.const", "IMPORT_VALIDATION_FAILED")


async def test_a_batch_holding_nul_is_refused_whole(client: Client) -> None:
    definition, _ = _with_nul_at(unique("batch"), "const")
    operations = [
        {"op": "create", "definition": simple_definition(unique("ok"))},
        {"op": "create", "definition": definition},
    ]
    status, body, _ = await client("POST", "/workflows/batch", json={"operations": operations})
    assert status == 422, body
    assert body["errors"][0]["path"].endswith("input_schema.const"), body


# --- YAML 1.2 --------------------------------------------------------------------------

YAML_12 = """\
name: {name}
nodes:
  - id: shape
    type: transform
    parameters:
      output:
        country: NO
        answer: yes
        switch: on
        time: 12:30:00
        oct: 010
        octal: 0o17
        version: 1.10
        exact: "1.10"
        day: 2024-01-01
        flag: true
        nothing: null
"""


async def test_yaml_is_read_as_yaml_1_2_and_exports_round_trip(client: Client) -> None:
    name = unique("yaml12")
    status, body, _ = await client(
        "POST",
        "/workflows/import",
        data=YAML_12.format(name=name),
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 201, body
    assert body["nodes"][0]["parameters"]["output"] == {
        "country": "NO",
        "answer": "yes",
        "switch": "on",
        "time": "12:30:00",
        "oct": 10,
        "octal": 15,
        "version": 1.1,  # a number, as in JSON: quote it to keep the text
        "exact": "1.10",
        "day": "2024-01-01",
        "flag": True,
        "nothing": None,
    }
    status, text, headers = await client(
        "GET", f"/workflows/{body['id']}/export", headers={"Accept": "application/yaml"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/yaml")
    exported = text.decode()
    again = exported.replace(f"name: {name}", f"name: {name}-again")
    status, copy, _ = await client(
        "POST", "/workflows/import", data=again, headers={"Content-Type": "application/yaml"}
    )
    assert status == 201, copy
    assert copy["nodes"] == body["nodes"]
    assert yaml.safe_load(exported)["nodes"] == body["nodes"]  # YAML 1.1 readers too


@pytest.mark.parametrize(
    "document",
    [
        "name: a\nname: b\n",  # a key twice
        "name: !!binary aGk=\n",  # not a JSON value
        "name: x\nvars: {at: !!timestamp 2024-01-01}\n",
    ],
)
async def test_yaml_that_json_cannot_hold_is_refused(client: Client, document: str) -> None:
    status, body, _ = await client(
        "POST", "/workflows/import", data=document, headers={"Content-Type": "application/yaml"}
    )
    assert status == 400 and body["code"] == "INVALID_EXPORT_FORMAT", body


async def test_yaml_infinity_is_refused_at_its_path(client: Client) -> None:
    document = yaml.safe_dump({**simple_definition(unique("inf")), "vars": {"n": float("inf")}})
    assert "n: .inf" in document
    status, body, _ = await client(
        "POST", "/workflows/import", data=document, headers={"Content-Type": "application/yaml"}
    )
    assert status == 422 and body["errors"][0]["path"] == "vars.n", body
