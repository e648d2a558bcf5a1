"""``flowmesh nats-user``: NATS credentials for one tenant's own services, UIs and workers.

Other services publish trigger events straight onto NATS, UIs may follow runs there, and
task workers serve ``task`` steps, so a platform team hands each tenant NATS users that
can reach that tenant's subjects and nothing else. Each tenant gets an account of its
own in the server configuration (``deploy/nats/accounts.conf`` includes the generated
``tenants.conf``) which imports from the Flowmesh account only:

- the service ``<prefix>.<tenant>.ingress.>``, as ``<prefix>.<tenant>.events.>`` in the
  tenant's account: a ``publisher`` publishes trigger events there, and a gateway stores
  each in the events stream once per ``(tenant, id)`` and answers as JetStream would (so
  ``js.publish`` works; a ``Nats-Msg-Id`` the publisher sets is not the stream's);
- the stream ``<prefix>.<tenant>.runs.*``: a ``reader`` follows its tenant's run events
  live (history and replay are the HTTP API's: ``GET /runs/{id}/events``);
- for a ``worker`` (``--queue``, once per queue it serves): the fetch and ack subjects of
  each queue's consumer ``tasks_<tenant>_<queue>`` on the tasks stream, and the service
  ``<prefix>.<tenant>.task-replies.*`` where it answers the executor. A worker connects
  with the inbox prefix ``_INBOX_t_<tenant>`` (the worker SDK does).

Inside its account each user is also held to its role's subjects, so an attempt outside
them is refused by the server (a permissions violation), not just unanswered. Each
tenant account also has limits (connections, subscriptions, payload size): the defaults
of :class:`AccountLimits`, or what ``--max-connections``, ``--max-subscriptions`` and
``--max-payload`` last set for the tenant.

The record of every minted user (name, tenant, role, bcrypt hash of the password, time)
is ``tenants.json`` beside ``tenants.conf``; the configuration is rendered from it, in a
stable order, each time. The password is shown once and never stored.

Then apply it. A new user of a tenant that has users already, or new limits, take a reload
(``nats-server --signal reload``, or SIGHUP). A tenant's first user creates its account,
and a worker's new queue changes its imports; nats-server 2.15 does not wire a new
account's imports on reload (its users sign in but reach nothing; measured): restart the
server, or each node of a cluster in turn.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

import bcrypt
import msgspec

from flowmesh_cli.errors import CliError
from flowmesh_proto.ids import is_queue_name, tenant_id_problem
from flowmesh_proto.tasks import task_consumer, worker_inbox_prefix

Role = Literal["publisher", "reader", "worker"]
ROLES: tuple[Role, ...] = ("publisher", "reader", "worker")

#: Cost of the bcrypt hashes; the NATS server checks one per connection.
BCRYPT_COST = 11
RECORD_FILE = "tenants.json"
CONFIG_FILE = "tenants.conf"

_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")
_ACCOUNT = re.compile(r"^[A-Z][A-Z0-9_]*$")


class NatsUser(msgspec.Struct, frozen=True, kw_only=True):
    """One minted user: who it is for, what it may do, and the hash of its password."""

    user: str
    tenant: str
    role: Role
    password_hash: str
    created_at: str
    queues: tuple[str, ...] = ()
    """The task queues a ``worker`` serves (none for the other roles)."""


class AccountLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one tenant's account may hold at once, over all its users (NATS account limits).

    A connection or subscription past the limit is refused, and a message larger than
    ``max_payload`` closes the connection that sent it. Leaf nodes do not apply (the
    configuration opens no leaf node port), nor does pending: ``max_pending`` is per
    connection and server-wide (NATS's default, 64 MB; ``nats.conf``).
    """

    max_connections: int = 100
    max_subscriptions: int = 1000
    max_payload: int = 1024 * 1024
    """Bytes; the gateway's largest request body too (``FLOWMESH_GATEWAY_MAX_BODY_BYTES``)."""


class TenantUsers(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``tenants.conf`` is rendered from."""

    prefix: str = "fm"
    """The subject prefix of the deployment (``FLOWMESH_*_SUBJECT_PREFIX``)."""
    service_account: str = "FLOWMESH"
    """The account the Flowmesh services, their streams and the exports live in."""
    tasks_stream: str = "FM_TASKS"
    """The tasks stream's name (``<stream prefix>_TASKS``)."""
    users: tuple[NatsUser, ...] = ()
    limits: dict[str, AccountLimits] = {}
    """Limits set for a tenant (``--max-*``); the others have :class:`AccountLimits`'s."""


class Minted(msgspec.Struct, frozen=True, kw_only=True):
    """What the command prints once: the new user's name and password, and its subjects."""

    user: str
    password: str
    tenant: str
    role: Role
    account: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    queues: tuple[str, ...] = ()
    inbox_prefix: str | None = None
    """The inbox prefix the user must connect with (a worker's), if not NATS's default."""
    limits: AccountLimits
    """The tenant account's limits (shared by all its users)."""
    apply: Literal["reload", "restart"]
    """What the server needs before the user works (``restart`` when imports change)."""


class NatsUserError(CliError):
    """The tenant, role, user name or record cannot be used."""


# --- pure: names, permissions and the rendered configuration ---


def account_name(tenant: str) -> str:
    """The tenant's account in the server configuration."""
    return f"TENANT_{tenant}"


def permissions(
    prefix: str,
    tenant: str,
    role: Role,
    queues: Sequence[str] = (),
    tasks_stream: str = "FM_TASKS",
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(publish, subscribe) subjects a user of ``role`` may use; nothing else."""
    if role == "publisher":
        # The inbox is for the ingress's publish acknowledgements: the tenant account's own
        # (accounts keep it private), not a service's.
        return (f"{prefix}.{tenant}.events.>",), ("_INBOX.>",)
    if role == "worker":
        consumers = [task_consumer(tenant, queue) for queue in queues]
        publish = [
            *(f"$JS.API.CONSUMER.MSG.NEXT.{tasks_stream}.{c}" for c in consumers),
            *(f"$JS.ACK.{tasks_stream}.{c}.>" for c in consumers),
            f"{prefix}.{tenant}.task-replies.*",
        ]
        return tuple(publish), (f"{worker_inbox_prefix(tenant)}.>",)
    return (), (f"{prefix}.{tenant}.runs.*",)


def imports(record: TenantUsers, tenant: str) -> tuple[str, ...]:
    """The imports of ``tenant``'s account (none when it has no user): one line each."""
    users = [u for u in record.users if u.tenant == tenant]
    if not users:
        return ()
    account, prefix, stream = record.service_account, record.prefix, record.tasks_stream

    def service(subject: str, to: str | None = None) -> str:
        mapped = f', to: "{to}"' if to else ""
        return f'{{service: {{account: {account}, subject: "{subject}"}}{mapped}}}'

    # Events go to the ingress (no stream there) from the subject the tenant publishes on.
    lines = [service(f"{prefix}.{tenant}.ingress.>", to=f"{prefix}.{tenant}.events.>")]
    lines.append(f'{{stream: {{account: {account}, subject: "{prefix}.{tenant}.runs.*"}}}}')
    queues = sorted({q for u in users if u.role == "worker" for q in u.queues})
    if queues:
        lines.append(service(f"{prefix}.{tenant}.task-replies.*"))
    for queue in queues:
        consumer = task_consumer(tenant, queue)
        lines.append(service(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"))
        lines.append(service(f"$JS.ACK.{stream}.{consumer}.>"))
    return tuple(lines)


def limits_of(record: TenantUsers, tenant: str) -> AccountLimits:
    return record.limits.get(tenant, AccountLimits())


def check_limits(limits: AccountLimits) -> None:
    for name in ("max_connections", "max_subscriptions", "max_payload"):
        if getattr(limits, name) < 1:
            raise NatsUserError(f"--{name.replace('_', '-')} must be at least 1")


def check_queues(role: Role, queues: Sequence[str]) -> None:
    if role != "worker":
        if queues:
            raise NatsUserError(f"--queue is for a worker, not a {role}")
        return
    if not queues:
        raise NatsUserError("a worker serves named queues: give --queue at least once")
    for queue in queues:
        if not is_queue_name(queue):
            raise NatsUserError(f"queue {queue!r} must be 1 to 64 letters, digits, '_' or '-'")


def check_tenant(tenant: str) -> None:
    problem = tenant_id_problem(tenant)
    if problem is not None:
        raise NatsUserError(problem)


def check_user_name(name: str) -> None:
    if not _USER_NAME.match(name):
        raise NatsUserError(
            f"user name {name!r} must be lowercase letters, digits and '-' (at most 63)"
        )


def add_user(record: TenantUsers, user: NatsUser) -> TenantUsers:
    """``record`` with ``user`` added; a name in use is refused (remove it first)."""
    check_tenant(user.tenant)
    check_user_name(user.user)
    check_queues(user.role, user.queues)
    if any(existing.user == user.user for existing in record.users):
        raise NatsUserError(f"NATS user {user.user!r} exists; remove it first to mint it again")
    return msgspec.structs.replace(record, users=(*record.users, user))


def remove_user(record: TenantUsers, tenant: str, name: str) -> TenantUsers:
    """``record`` without the user ``name`` of ``tenant``."""
    kept = tuple(u for u in record.users if not (u.user == name and u.tenant == tenant))
    if len(kept) == len(record.users):
        raise NatsUserError(f"tenant {tenant!r} has no NATS user {name!r}")
    return msgspec.structs.replace(record, users=kept)


def render(record: TenantUsers) -> str:
    """The text of ``tenants.conf``: one account per tenant, users sorted by name."""
    lines = [
        "# Generated by `flowmesh nats-user` from tenants.json: do not edit by hand.",
        "# Included inside the `accounts` block of accounts.conf; one account per tenant.",
    ]
    tenants = sorted({u.tenant for u in record.users})
    for tenant in tenants:
        lines += [f"{account_name(tenant)}: {{", "  users: ["]
        for user in sorted((u for u in record.users if u.tenant == tenant), key=_by_name):
            publish, subscribe = permissions(
                record.prefix, tenant, user.role, user.queues, record.tasks_stream
            )
            allowed = (
                f"publish: {_allow(publish)}, subscribe: {_allow(subscribe)}"
                if publish
                else f'publish: {{deny: [">"]}}, subscribe: {_allow(subscribe)}'
            )
            lines.append(
                f'    {{user: "{user.user}", password: "{user.password_hash}",'
                f" permissions: {{{allowed}}}}}  # {user.role}"
            )
        limits = limits_of(record, tenant)
        lines += [
            "  ]",
            "  imports: [",
            *(f"    {line}" for line in imports(record, tenant)),
            "  ]",
            f"  limits: {{max_connections: {limits.max_connections},"
            f" max_subscriptions: {limits.max_subscriptions},"
            f" max_payload: {limits.max_payload}}}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _allow(subjects: Sequence[str]) -> str:
    return "{allow: [" + ", ".join(f'"{s}"' for s in subjects) + "]}"


def _by_name(user: NatsUser) -> str:
    return user.user


# --- the command ---


def load(directory: Path) -> TenantUsers:
    """The record in ``directory`` (an empty one if there is none yet)."""
    path = directory / RECORD_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return TenantUsers()
    except OSError as exc:
        raise NatsUserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        record = msgspec.json.decode(data, type=TenantUsers)
    except msgspec.DecodeError as exc:
        raise NatsUserError(f"{path} is not a record of NATS users: {exc}") from exc
    names = (record.prefix, record.tasks_stream)
    if not all(_PREFIX.match(n) for n in names) or not _ACCOUNT.match(record.service_account):
        raise NatsUserError(
            f"{path}: prefix, tasks_stream or service_account cannot be a subject/account"
        )
    return record


def save(directory: Path, record: TenantUsers) -> None:
    """Write the record and the configuration rendered from it (each atomically)."""
    if not directory.is_dir():
        raise NatsUserError(f"{directory} is not a directory (give the NATS config's --dir)")
    record_text = msgspec.json.format(msgspec.json.encode(record)).decode() + "\n"
    _replace(directory / RECORD_FILE, record_text)
    _replace(directory / CONFIG_FILE, render(record))


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise NatsUserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def mint(
    directory: Path,
    tenant: str,
    role: Role,
    name: str | None = None,
    *,
    queues: Sequence[str] = (),
    limits: Mapping[str, int] | None = None,
    cost: int = BCRYPT_COST,
    now: datetime | None = None,
) -> Minted:
    """Mint a user for ``tenant`` with ``role`` in the configuration under ``directory``.

    ``limits`` changes some of the tenant account's limits (names of :class:`AccountLimits`).
    """
    check_tenant(tenant)
    check_queues(role, queues)
    name = name or f"{tenant}-{role}"
    record = load(directory)
    password = secrets.token_urlsafe(32)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2a"))
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    user = NatsUser(
        user=name,
        tenant=tenant,
        role=role,
        password_hash=hashed.decode(),
        created_at=stamp,
        queues=tuple(dict.fromkeys(queues)),
    )
    updated = add_user(record, user)
    if limits:
        updated = _with_limits(updated, tenant, limits)
    save(directory, updated)
    publish, subscribe = permissions(record.prefix, tenant, role, user.queues, record.tasks_stream)
    return Minted(
        user=name,
        password=password,
        tenant=tenant,
        role=role,
        account=account_name(tenant),
        publish=publish,
        subscribe=subscribe,
        queues=user.queues,
        inbox_prefix=worker_inbox_prefix(tenant) if role == "worker" else None,
        limits=limits_of(updated, tenant),
        apply=_apply(record, updated, tenant),
    )


def set_limits(directory: Path, tenant: str, changes: Mapping[str, int]) -> AccountLimits:
    """Change limits of ``tenant``'s account (it needs a user first); a reload applies them."""
    check_tenant(tenant)
    record = load(directory)
    if all(u.tenant != tenant for u in record.users):
        raise NatsUserError(f"tenant {tenant!r} has no NATS user (and so no account) yet")
    updated = _with_limits(record, tenant, changes)
    save(directory, updated)
    return limits_of(updated, tenant)


def _with_limits(record: TenantUsers, tenant: str, changes: Mapping[str, int]) -> TenantUsers:
    limits = msgspec.structs.replace(limits_of(record, tenant), **changes)
    check_limits(limits)
    return msgspec.structs.replace(record, limits={**record.limits, tenant: limits})


def _apply(before: TenantUsers, after: TenantUsers, tenant: str) -> Literal["reload", "restart"]:
    """A reload, unless the tenant account's imports changed (nats-server 2.15 wires a new
    account's imports only at start)."""
    return "reload" if imports(before, tenant) == imports(after, tenant) else "restart"


def remove(directory: Path, tenant: str, name: str) -> None:
    check_tenant(tenant)
    record = remove_user(load(directory), tenant, name)
    if all(u.tenant != tenant for u in record.users):  # its account goes: so do its limits
        record = msgspec.structs.replace(
            record, limits={t: v for t, v in record.limits.items() if t != tenant}
        )
    save(directory, record)


def listing(directory: Path, tenant: str) -> list[NatsUser]:
    check_tenant(tenant)
    return [u for u in load(directory).users if u.tenant == tenant]


def report(minted: Minted, directory: Path, out: TextIO) -> None:
    """The human form of a new user: shown once, with how to use it and what to do next."""
    limits = minted.limits
    inbox = f" (inbox prefix {minted.inbox_prefix})" if minted.inbox_prefix else ""
    out.write(
        f"NATS user {minted.user!r} ({minted.role}) for tenant {minted.tenant!r}"
        f" in account {minted.account}\n"
        f"password (shown once): {minted.password}\n"
        f"may publish: {', '.join(minted.publish) or 'nothing'}\n"
        f"may subscribe: {', '.join(minted.subscribe)}\n"
        f"connect with: nats://{minted.user}:<password>@<nats-host>:4222{inbox}\n"
        f"account limits: {limits.max_connections} connections,"
        f" {limits.max_subscriptions} subscriptions, {limits.max_payload} bytes a message\n"
        f"wrote {directory / CONFIG_FILE}; {_APPLY[minted.apply]}\n"
    )


_APPLY = {
    "reload": "reload the server: nats-server --signal reload",
    "restart": "a new tenant account: restart the server (each cluster node in turn)",
}
