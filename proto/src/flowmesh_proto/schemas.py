"""Generate ``proto/schemas/`` for non-Python clients: one JSON Schema file per message, and
``asyncapi.json``, the AsyncAPI 3.0 document of every subject with the same schemas (built by
``flowmesh_proto.asyncapi``).

Run ``python -m flowmesh_proto.schemas [directory]``; a test fails when the committed files
differ from what this produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from flowmesh_proto import asyncapi, events, registry, runs, tasks, workflow
from flowmesh_proto.errors import Problem

SCHEMA_ROOTS: dict[str, Any] = {
    "workflow-definition": workflow.Definition,
    "run-request": runs.RunRequest,
    "run-event": runs.RunEvent,
    "workflow-changed": registry.WorkflowChanged,
    "run-cancel": runs.CancelRequest,
    "run": runs.Run,
    "event": events.EventEnvelope,
    "event-stored": events.EventStored,
    "event-refused": events.EventRefused,
    "task-request": tasks.TaskRequest,
    "task-reply": tasks.TaskReply,
    "problem": Problem,
    **{f"registry.{op}.request": req for op, (req, _) in registry.OPERATIONS.items()},
    **{f"registry.{op}.reply": res for op, (_, res) in registry.OPERATIONS.items()},
}

ASYNCAPI = "asyncapi.json"


def render() -> dict[str, str]:
    """File name -> JSON text, deterministic."""
    files: dict[str, str] = {}
    for name, kind in sorted(SCHEMA_ROOTS.items()):
        schema = msgspec.json.schema(kind)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        schema["title"] = schema.get("title", name)
        files[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    files[ASYNCAPI] = json.dumps(asyncapi.document(), indent=2, sort_keys=True) + "\n"
    return files


# --- files -----------------------------------------------------------------------------------


def default_directory() -> Path:
    return Path(__file__).resolve().parents[2] / "schemas"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    wanted = render()
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a command
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_directory()
    paths = write(target)
    print(f"wrote {len(paths)} schema files to {target}")
