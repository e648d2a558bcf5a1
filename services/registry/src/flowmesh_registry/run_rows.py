"""Runs to rows and back: the columns of ``runs`` and ``step_runs`` (migrations 0001, 0003).

A stored run reads back as exactly the view that was written (the projection resumes its
fold from it). JSON values travel to PostgreSQL as JSON text in ``text[]`` arrays, cast
to ``jsonb`` by the statement; a missing trigger is stored as ``{}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from flowmesh_proto.runs import ErrorInfo, Run, RunMetrics, RunStep, TriggerInfo
from flowmesh_registry.batchfold import Projected

Row = Mapping[str, Any]

_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str | None:
    return None if value is None else _encoder.encode(value).decode()


def step_of(row: Row) -> RunStep:
    error = row["error"]
    return RunStep(
        node_id=row["node_id"],
        status=row["status"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
        output=row["output"],
        error=msgspec.convert(error, ErrorInfo) if error is not None else None,
        reused=row["reused"],
    )


def run_of(row: Row, steps: Iterable[Row] = ()) -> Run:
    """The run resource of a ``runs`` row and its ``step_runs`` rows (in position order)."""
    trigger, error = row["trigger"], row["error"]
    parent = row["parent_run_id"]
    return Run(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        workflow_id=str(row["workflow_id"]),
        version=row["version"],
        status=row["status"],
        trigger=msgspec.convert(trigger, TriggerInfo) if trigger else None,
        input=row["input"],
        output=row["output"],
        error=msgspec.convert(error, ErrorInfo) if error is not None else None,
        attempt=row["attempt"],
        parent_run_id=str(parent) if parent is not None else None,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
        metrics=msgspec.convert(row["metrics"] or {}, RunMetrics),
        steps=[step_of(step) for step in steps],
    )


def upsert_arguments(projected: Sequence[Projected]) -> list[list[Any]]:
    """The array arguments $2..$29 of ``run_sql.UPSERT_RUNS`` for one tenant's runs."""
    runs: list[list[Any]] = [[] for _ in range(16)]
    steps: list[list[Any]] = [[] for _ in range(12)]
    for item in projected:
        view = item.view
        for column, value in zip(
            runs,
            (
                view.id,
                view.workflow_id,
                view.version,
                view.status,
                _json(view.trigger),
                _json(view.input),
                _json(view.output),
                _json(view.error),
                view.attempt,
                view.parent_run_id,
                view.created_at,
                view.started_at,
                view.finished_at,
                view.duration_ms,
                _json(view.metrics),
                item.last_seq,
            ),
            strict=True,
        ):
            column.append(value)
        for position, step in item.steps:
            for column, value in zip(
                steps,
                (
                    view.id,
                    step.node_id,
                    position,
                    step.status,
                    step.attempts,
                    step.started_at,
                    step.finished_at,
                    step.duration_ms,
                    _json(step.output),
                    _json(step.error),
                    step.reused,
                    item.last_seq,
                ),
                strict=True,
            ):
                column.append(value)
    return [*runs, *steps]
