"""The CLI's pure parts: workflow files read as YAML 1.2, answers printed as tables, JSON
and YAML, and the completion script made from the grammar."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
import yaml

from flowmesh_cli import completion, parser
from flowmesh_cli.documents import is_yaml, load
from flowmesh_cli.errors import CliError
from flowmesh_cli.output import render
from flowmesh_proto.registry import Secret, SecretPage
from flowmesh_proto.runs import ErrorInfo, Run, RunMetrics, RunStep


def test_yaml_files_are_read_as_yaml_1_2() -> None:
    text = "name: x\nflags: [NO, yes, on, off, y]\nn: 0777\nt: 1:30\nf: 1.5e3\nb: [true, False]\n"
    assert load("x.yaml", text) == {
        "name": "x",
        "flags": ["NO", "yes", "on", "off", "y"],  # strings in YAML 1.2, not booleans
        "n": 777,  # decimal, not octal
        "t": "1:30",  # not sexagesimal
        "f": 1500.0,
        "b": [True, False],
    }
    assert load("x.json", '{"name": "x"}') == {"name": "x"}
    assert is_yaml("x.txt", "name: x") and not is_yaml("x.txt", ' {"name": 1}')
    with pytest.raises(CliError, match=r"x\.yaml is not YAML"):
        load("x.yaml", "name: [open\n")
    with pytest.raises(CliError, match=r"x\.json is not JSON"):
        load("x.json", "{")


def test_answers_as_table_json_and_yaml() -> None:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    page = SecretPage(items=[Secret(name="B_TOKEN", created_at=at, updated_at=at)])
    assert render(page, "table") == "NAME     UPDATED\nB_TOKEN  2026-12-01T09:30:00Z\n"
    assert render(page.items, "table").startswith("NAME")
    assert render([], "table") == "(none)\n"
    assert json.loads(render(page.items, "json"))[0]["name"] == "B_TOKEN"
    assert yaml.safe_load(render(page, "yaml"))["items"][0]["name"] == "B_TOKEN"


def test_completion_knows_every_command_and_action() -> None:
    grammar = parser.build(io.StringIO(), io.StringIO())
    words = completion.words(grammar)
    assert words[""][:6] == ["actions", "catalog", "completion", "connectors", "events", "keys"]
    assert words["workflows"][:6] == ["apply", "delete", "export", "get", "list", "validate"]
    assert "--file" in words["workflows apply"] and "--output" in words["runs list"]
    assert '"secrets") words="delete list set' in completion.script(grammar, "bash")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (["workflows", "ap"], ["apply"]),
        (["-o", "json", "runs", ""], ["cancel", "get", "list", "logs", "retry", "watch"]),
        (["runs", "list", "-o", ""], ["table", "json", "yaml"]),
        (["secrets", "s"], ["set"]),
        (["run", "hello", "--w"], ["--watch", "--workflow-version"]),  # after a name
        (["completion", ""], ["bash", "zsh"]),
    ],
)
def test_the_bash_script_completes_in_bash(words: list[str], offered: list[str]) -> None:
    grammar = parser.build(io.StringIO(), io.StringIO())
    line = " ".join(f"'{w}'" for w in ["flowmesh", *words])
    probe = (
        f"{completion.script(grammar, 'bash')}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words)}; _flowmesh_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    if words[-1].startswith("-"):
        assert done.stdout.split() == offered
    else:
        assert [w for w in done.stdout.split() if not w.startswith("-")] == offered


def test_the_script_never_names_a_variable_zsh_ties_to_path() -> None:
    grammar = parser.build(io.StringIO(), io.StringIO())
    for shell in ("bash", "zsh"):
        assert "local path" not in completion.script(grammar, shell)


def test_a_failed_runs_table_says_why() -> None:
    failure = ErrorInfo(
        code="HttpStatus", message="POST https://x.example answered 500", node_id="b"
    )
    step = RunStep(
        node_id="b",
        status="failed",
        attempts=3,
        started_at=None,
        finished_at=None,
        duration_ms=12.0,
        output=None,
        error=failure,
    )
    run = Run(
        id="r1",
        tenant_id="acme",
        workflow_id="w1",
        version=1,
        status="failed",
        trigger=None,
        input=None,
        output=None,
        error=failure,
        attempt=1,
        parent_run_id=None,
        created_at=datetime(2026, 12, 6, tzinfo=UTC),
        started_at=None,
        finished_at=None,
        duration_ms=None,
        metrics=RunMetrics(),
        steps=[step],
    )
    run_part, steps_part = render(run, "table").split("STEP", 1)
    assert "error: HttpStatus: POST https://x.example answered 500" in run_part
    assert "HttpStatus: POST https://x.example answered 500" in steps_part
