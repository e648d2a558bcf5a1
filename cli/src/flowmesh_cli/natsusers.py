"""``flowmesh nats-user``: NATS credentials for one tenant's own services and UIs.

Other services publish trigger events straight onto NATS, and UIs may follow runs there,
so a platform team hands each tenant NATS users that can reach that tenant's subjects
and nothing else. Each tenant gets an account of its own in the server configuration
(``deploy/nats/accounts.conf`` includes the generated ``tenants.conf``) which imports
from the Flowmesh account only:

- the service ``<prefix>.<tenant>.events.>``: a ``publisher`` publishes trigger events
  there (JetStream acknowledges them across the import, and ``Nats-Msg-Id`` deduplicates);
- the stream ``<prefix>.<tenant>.runs.*``: a ``reader`` follows its tenant's run events
  live (history and replay are the HTTP API's: ``GET /runs/{id}/events``).

Inside its account each user is also held to its role's subjects, so an attempt outside
them is refused by the server (a permissions violation), not just unanswered.

The record of every minted user (name, tenant, role, bcrypt hash of the password, time)
is ``tenants.json`` beside ``tenants.conf``; the configuration is rendered from it, in a
stable order, each time. The password is shown once and never stored.

Then apply it. A new user of a tenant that has users already takes a reload
(``nats-server --signal reload``, or SIGHUP). A tenant's first user creates its account,
and nats-server 2.15 does not wire a new account's imports on reload (its users sign in
but reach nothing; measured): restart the server, or each node of a cluster in turn.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

import bcrypt
import msgspec

from flowmesh_cli.errors import CliError
from flowmesh_proto.ids import tenant_id_problem

Role = Literal["publisher", "reader"]
ROLES: tuple[Role, ...] = ("publisher", "reader")

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


class TenantUsers(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``tenants.conf`` is rendered from."""

    prefix: str = "fm"
    """The subject prefix of the deployment (``FLOWMESH_*_SUBJECT_PREFIX``)."""
    service_account: str = "FLOWMESH"
    """The account the Flowmesh services, their streams and the exports live in."""
    users: tuple[NatsUser, ...] = ()


class Minted(msgspec.Struct, frozen=True, kw_only=True):
    """What the command prints once: the new user's name and password, and its subjects."""

    user: str
    password: str
    tenant: str
    role: Role
    account: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    apply: Literal["reload", "restart"]
    """What the server needs before the user works (``restart`` for a new account)."""


class NatsUserError(CliError):
    """The tenant, role, user name or record cannot be used."""


# --- pure: names, permissions and the rendered configuration ---


def account_name(tenant: str) -> str:
    """The tenant's account in the server configuration."""
    return f"TENANT_{tenant}"


def permissions(prefix: str, tenant: str, role: Role) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(publish, subscribe) subjects a user of ``role`` may use; nothing else."""
    if role == "publisher":
        # The inbox is for JetStream's publish acknowledgements (accounts keep it private).
        return (f"{prefix}.{tenant}.events.>",), ("_INBOX.>",)
    return (), (f"{prefix}.{tenant}.runs.*",)


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
            publish, subscribe = permissions(record.prefix, tenant, user.role)
            allowed = (
                f"publish: {_allow(publish)}, subscribe: {_allow(subscribe)}"
                if publish
                else f'publish: {{deny: [">"]}}, subscribe: {_allow(subscribe)}'
            )
            lines.append(
                f'    {{user: "{user.user}", password: "{user.password_hash}",'
                f" permissions: {{{allowed}}}}}  # {user.role}"
            )
        account, events, runs = (
            record.service_account,
            f"{record.prefix}.{tenant}.events.>",
            f"{record.prefix}.{tenant}.runs.*",
        )
        lines += [
            "  ]",
            "  imports: [",
            f'    {{service: {{account: {account}, subject: "{events}"}}}}',
            f'    {{stream: {{account: {account}, subject: "{runs}"}}}}',
            "  ]",
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
    if not _PREFIX.match(record.prefix) or not _ACCOUNT.match(record.service_account):
        raise NatsUserError(f"{path}: prefix or service_account cannot be a subject/account")
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
    cost: int = BCRYPT_COST,
    now: datetime | None = None,
) -> Minted:
    """Mint a user for ``tenant`` with ``role`` in the configuration under ``directory``."""
    check_tenant(tenant)
    name = name or f"{tenant}-{role}"
    record = load(directory)
    password = secrets.token_urlsafe(32)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2a"))
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    user = NatsUser(
        user=name, tenant=tenant, role=role, password_hash=hashed.decode(), created_at=stamp
    )
    new_account = all(existing.tenant != tenant for existing in record.users)
    save(directory, add_user(record, user))
    publish, subscribe = permissions(record.prefix, tenant, role)
    return Minted(
        user=name,
        password=password,
        tenant=tenant,
        role=role,
        account=account_name(tenant),
        publish=publish,
        subscribe=subscribe,
        apply="restart" if new_account else "reload",
    )


def remove(directory: Path, tenant: str, name: str) -> None:
    check_tenant(tenant)
    save(directory, remove_user(load(directory), tenant, name))


def listing(directory: Path, tenant: str) -> list[NatsUser]:
    check_tenant(tenant)
    return [u for u in load(directory).users if u.tenant == tenant]


def report(minted: Minted, directory: Path, out: TextIO) -> None:
    """The human form of a new user: shown once, with how to use it and what to do next."""
    out.write(
        f"NATS user {minted.user!r} ({minted.role}) for tenant {minted.tenant!r}"
        f" in account {minted.account}\n"
        f"password (shown once): {minted.password}\n"
        f"may publish: {', '.join(minted.publish) or 'nothing'}\n"
        f"may subscribe: {', '.join(minted.subscribe)}\n"
        f"connect with: nats://{minted.user}:<password>@<nats-host>:4222\n"
        f"wrote {directory / CONFIG_FILE}; {_APPLY[minted.apply]}\n"
    )


_APPLY = {
    "reload": "reload the server: nats-server --signal reload",
    "restart": "a new tenant account: restart the server (each cluster node in turn)",
}
