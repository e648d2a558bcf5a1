"""What PostgreSQL can keep (proto ``storable``), what the registry calls unavailable (its
translation table of driver errors), and YAML read as YAML 1.2."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from flowmesh_gateway.ingress import Admitted, admit
from flowmesh_proto.events import IngressError
from flowmesh_proto.storable import json_path, unstorable, unstorable_json
from flowmesh_proto.subjects import Subjects
from flowmesh_registry.db import translated, unavailable
from flowmesh_registry.documents import DocumentError, parse_document, render_document
from flowmesh_shared.errors import Unavailable

NUL = "\u0000"

# --- unstorable --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        (NUL, "$", "U+0000"),
        ({"a": {"b": f"x{NUL}"}}, "a.b", "U+0000"),
        ({"a": [1, 2, {"c d": NUL}]}, 'a[2]["c d"]', "U+0000"),
        ({f"k{NUL}": 1}, '["k\\u0000"]', "key holds U+0000"),
        ({"s": "\ud800"}, "s", "lone surrogate (U+D800)"),
        ({"\udfff": 1}, '["\\udfff"]', "lone surrogate"),
        ({"n": float("inf")}, "n", "not a JSON number"),
        ([float("nan")], "[0]", "not a JSON number"),
        ({"b": b"x"}, "b", "bytes is not a JSON value"),
        ({"s": {1, 2}}, "s", "set is not a JSON value"),
        ({(1, 2): 1}, '["(1, 2)"]', "key of type tuple"),
    ],
)
def test_what_cannot_be_kept_is_found_at_its_path(value: Any, path: str, words: str) -> None:
    found = unstorable(value)
    assert found is not None and found.path == path and words in found.reason


def test_paths_start_at_their_root() -> None:
    found = unstorable({"a": [NUL]}, "input")
    assert found is not None and found.path == "input.a[0]"
    found = unstorable(NUL, "input")
    assert found is not None and found.path == "input"
    assert json_path(["a", 0, "b_1", "c-d"], "input") == 'input.a[0].b_1["c-d"]'
    assert json_path([]) == "$" and json_path([0, "x"]) == "[0].x"


def test_what_can_be_kept_is_none() -> None:
    kept = {
        "text": "\\u0000 é \U0001f600 \x01",
        "n": [0, -1, 10**300, 1.5e308, True, None],
        "": {"": []},
        1: "a YAML int key",
    }
    assert unstorable(kept) is None


def test_the_walk_is_iterative_and_finds_the_first() -> None:
    deep: Any = NUL
    for _ in range(100_000):
        deep = [deep]
    found = unstorable({"x": "ok", "deep": deep})
    assert found is not None and found.path.startswith("deep[0][0]")
    found = unstorable({"a": NUL, "b": NUL})
    assert found is not None and found.path == "a"


def test_json_is_walked_only_when_it_escapes_nul() -> None:
    assert unstorable_json(b'{"a": "\\\\u0000"}') is None  # an escaped backslash: text
    found = unstorable_json(b'{"a": ["\\u0000"]}', "input")
    assert found is not None and found.path == "input.a[0]"
    assert unstorable_json(b'{"a": "\\u0000') is None  # not JSON: its decoder says so


# --- the NATS ingress --------------------------------------------------------------------


def test_an_ingress_event_holding_nul_is_refused_at_its_path() -> None:
    envelope = {"id": "e1", "type": "order.created", "tenant": "acme", "data": {"k": NUL}}

    def decide(value: dict[str, Any]) -> Admitted | IngressError:
        payload = json.dumps(value).encode()
        subject = "fm.acme.ingress.order.created"
        return admit(Subjects(), subject, {}, payload, max_bytes=10_000, stream="FM_EVENTS")

    refused = decide(envelope)
    assert isinstance(refused, IngressError) and refused.code == 400
    assert refused.description.startswith("data.k: ") and "U+0000" in refused.description
    assert isinstance(decide({**envelope, "data": {"k": "\\u0000"}}), Admitted)


# --- PostgreSQL unavailable --------------------------------------------------------------


def _error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("message")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError(),
        OSError("no route"),
        _error(asyncpg.CannotConnectNowError),
        _error(asyncpg.AdminShutdownError),
        _error(asyncpg.CrashShutdownError),
        _error(asyncpg.TooManyConnectionsError),
        _error(asyncpg.InsufficientResourcesError),
        _error(asyncpg.ConnectionDoesNotExistError),
        _error(asyncpg.ConnectionFailureError),
        _error(asyncpg.PostgresConnectionError),
        _error(asyncpg.ReadOnlySQLTransactionError),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.InterfaceError("pool is closed"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        # a connection ended mid-use by the server (seen in the outage test, once)
        asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
    ],
)
def test_every_unavailability_is_503(exc: BaseException) -> None:
    assert unavailable(exc)
    for request in (True, False):
        ours = translated(exc, request=request)
        assert isinstance(ours, Unavailable) and ours.code.http_status == 503


@pytest.mark.parametrize(
    "exc",
    [
        _error(asyncpg.UniqueViolationError),
        _error(asyncpg.SerializationError),
        _error(asyncpg.UndefinedTableError),
        _error(asyncpg.NumericValueOutOfRangeError),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        ValueError("a bug"),
    ],
)
def test_other_errors_are_not_unavailability(exc: BaseException) -> None:
    assert not unavailable(exc)
    assert translated(exc, request=True) is None


def test_text_postgresql_refuses_is_422_in_a_request_only() -> None:
    for cls in (asyncpg.UntranslatableCharacterError, asyncpg.CharacterNotInRepertoireError):
        ours = translated(_error(cls), request=True)
        assert ours is not None and ours.code.http_status == 422
        assert translated(_error(cls), request=False) is None  # the projection's to judge


# --- YAML 1.2 ----------------------------------------------------------------------------


def test_yaml_is_read_with_the_yaml_1_2_core_schema() -> None:
    document = """\
country: NO
answer: yes
switch: off
y: y
time: 12:30:00
oct: 010
octal: 0o17
hex: 0x1F
version: 1.10
exp: 1e3
day: 2024-01-01
flags: [true, True, TRUE, false]
nothing: [null, ~, Null, NULL]
inf: -.inf
merge: {<<: {a: 1}}
"""
    assert parse_document(document, "yaml") == {
        "country": "NO",
        "answer": "yes",
        "switch": "off",
        "y": "y",
        "time": "12:30:00",
        "oct": 10,
        "octal": 15,
        "hex": 31,
        "version": 1.1,
        "exp": 1000.0,
        "day": "2024-01-01",
        "flags": [True, True, True, False],
        "nothing": [None, None, None, None],
        "inf": float("-inf"),
        "merge": {"<<": {"a": 1}},
    }


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("a: &x 1\nb: *x\n", "aliases are not allowed"),
        ("a: 1\na: 2\n", "appears twice"),
        ("a: !!binary aGk=\n", "could not determine a constructor"),
        ("a: !!set {x}\n", "could not determine a constructor"),
        ("a: !!timestamp 2024-01-01\n", "could not determine a constructor"),
        ("a: !!python/object:os.system x\n", "could not determine a constructor"),
        ("a: !!int 1.5\n", "not an integer"),
        ("a: !!bool yes\n", "not a boolean"),
        ("a: " + "9" * 5000 + "\n", "integer too long"),
        ("a: " + "[" * 2000 + "]" * 2000, "too deep"),
    ],
)
def test_yaml_that_is_no_json_document_is_refused(document: str, words: str) -> None:
    with pytest.raises(DocumentError, match=words):
        parse_document(document, "yaml")


def test_export_round_trips_for_yaml_1_2_and_1_1_readers() -> None:
    import yaml

    data = {
        "strings": ["NO", "yes", "on", "12:30:00", "010", "0o17", "0x1F", "1e5", "1.10", "~"],
        "more": ["2024-01-01", "true", "null", ".inf", "", "<<", "=", "-.5", "+1"],
        "numbers": [10, -3, 1.1, 1.5e-5, 1e20, 0.0],
        "other": [True, False, None, {"k": "v"}],
    }
    text = render_document(data, "yaml")
    assert parse_document(text, "yaml") == data
    assert yaml.safe_load(text) == data
