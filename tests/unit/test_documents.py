"""Portable documents: JSON and YAML in, the same data out; no YAML tricks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowmesh_registry.documents import (
    DocumentError,
    content_hash,
    parse_document,
    render_document,
)

DOC = {
    "name": "order-fulfilment",
    "timeout": "PT1H",
    "nodes": [{"id": "charge", "type": "noop"}],
    "edges": [],
    "vars": {"when": "2026-01-01", "n": 3, "flag": True, "none": None},
}


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_render_then_parse_is_identity(fmt: str) -> None:
    assert parse_document(render_document(DOC, fmt), fmt) == DOC


def test_yaml_dates_stay_strings() -> None:
    assert parse_document("a: 2026-01-01\nb: 2026-01-01T10:00:00Z\n", "yaml") == {
        "a": "2026-01-01",
        "b": "2026-01-01T10:00:00Z",
    }


def test_yaml_aliases_are_refused() -> None:
    bomb = "a: &a [1, 2]\nb: [*a, *a]\n"
    with pytest.raises(DocumentError, match="aliases"):
        parse_document(bomb, "yaml")


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("{", "json"),
        ("[1,", "json"),
        ("a: [1", "yaml"),
        ("!!python/object:os.system {}", "yaml"),
        ("{}", "xml"),
    ],
)
def test_malformed_documents_are_refused(text: str, fmt: str) -> None:
    with pytest.raises(DocumentError):
        parse_document(text, fmt)


def test_deep_yaml_is_refused_not_crashing() -> None:
    with pytest.raises(DocumentError):
        parse_document("[" * 5000 + "]" * 5000, "yaml")


#: The registry reads a document in a worker thread: 100,000 ``[`` (100 KB, under the
#: definition limit) once overflowed libyaml's recursive composer there and ended the process.
_DEEP_IN_A_THREAD = """
import threading
from flowmesh_registry.documents import DocumentError, compose_json, read_document

answers = []

def read():
    block = "a:\\n" + "".join(" " * i + "b:\\n" for i in range(1, 2000))
    for text in ["[" * 100_000, "- " * 100_000 + "x", block]:
        try:
            read_document(text, "yaml")
        except DocumentError as exc:
            answers.append((str(exc), exc.line))
    answers.append(compose_json("[" * 100_000 + "]" * 100_000))

thread = threading.Thread(target=read)
thread.start()
thread.join()
print(answers)
"""


def test_deep_yaml_in_a_worker_thread_is_refused_before_it_is_composed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DEEP_IN_A_THREAD], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(
        [("YAML nesting is too deep", 1)] * 2 + [("YAML nesting is too deep", 257), None]
    )


def test_content_hash_ignores_key_order() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
