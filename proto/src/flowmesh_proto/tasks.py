"""Task steps (``<prefix>.<t>.tasks.<queue>``, stream FM_TASKS): what an executor asks of an
external worker, and what the worker answers.

The executor publishes a :class:`TaskRequest` to the queue's subject (a work queue: one
worker takes it) with the header :data:`REPLY_TO` naming a core NATS subject; the worker
answers there with :class:`TaskReply` messages: ``heartbeat`` while it works (the executor
just keeps waiting: the task's ``timeout`` and the attempt's deadline still bound the
wait), then one ``result`` or ``error``. Replies name the ``idempotency_key`` and
``attempt`` they answer; the executor ignores any others.

Steps are at-least-once: ``idempotency_key`` (``<run_id>:<node_id>``) is the same for
every delivery of one step, so a worker can make its side effects idempotent. Each
execution of an attempt publishes its own request (``Nats-Msg-Id`` is
``<idempotency_key>:<attempt>:<token>``, the token fresh per execution), because the
reply subject lives only as long as the execution that waits on it: a request answered
after its executor died is answered to nobody, and a re-run must reach a worker again.
``deadline`` is when the executor stops waiting (the earlier of the attempt's deadline and
the task's ``timeout``); a worker drops a request whose deadline has passed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

#: The header naming the subject a worker answers on (``<prefix>.<t>.task-replies.<token>``:
#: a tenant's workers may publish only there, so no tenant can answer another's task).
REPLY_TO = "Fm-Reply-To"


def task_consumer(tenant: str, queue: str) -> str:
    """The durable pull consumer serving one tenant's queue on the tasks stream.

    ``tasks_<tenant>_<queue>``: a tenant id never holds ``_``, so no two (tenant, queue)
    pairs share a name (with ``-`` they could: tenant ``a`` queue ``b-c`` against tenant
    ``a-b`` queue ``c``), and a tenant's NATS users can be allowed exactly its consumers.
    The executor creates it; workers only fetch from it and ack.
    """
    return f"tasks_{tenant}_{queue}"


def worker_inbox_prefix(tenant: str) -> str:
    """The inbox prefix a tenant's worker connects with (its NATS user may subscribe there)."""
    return f"_INBOX_t_{tenant}"


class TaskRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    tenant: str
    queue: str
    run_id: str
    workflow_id: str
    version: int
    node_id: str
    attempt: int
    idempotency_key: str
    input: Any = None
    deadline: datetime | None = None  # when the executor stops waiting for this attempt


class _TaskReply(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    idempotency_key: str
    attempt: int


class TaskHeartbeat(_TaskReply, frozen=True, kw_only=True, tag="heartbeat"):
    pass


class TaskResult(_TaskReply, frozen=True, kw_only=True, tag="result"):
    output: Any = None


class TaskError(_TaskReply, frozen=True, kw_only=True, tag="error"):
    error_class: str
    message: str


TaskReply = TaskHeartbeat | TaskResult | TaskError

task_request_decoder = msgspec.json.Decoder(TaskRequest)
task_reply_decoder = msgspec.json.Decoder(TaskReply)
