"""Connectors: a tenant's stored description of an external service (DESIGN section 16).

A connector names a base URL, the hosts its requests may reach, default headers, and how
it authenticates. Every credential is a secret's *name* (``secret``, ``password_secret``,
``client_secret``), never a value: a connector carries nothing secret, and every reply
shows it whole. The rules a spec must follow beyond its shape are in
:mod:`flowmesh_proto.connector_rules` (pure, shared by the registry and, later, the
executor).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from flowmesh_proto.ids import SECRET_NAME_PATTERN
from flowmesh_proto.operations import Request
from flowmesh_proto.versionref import VersionRef

CONNECTOR_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
#: The longest ``base_url`` or ``token_url``.
MAX_URL_LENGTH = 2048
#: Hosts one connector may list.
MAX_HOSTS = 32
#: Default headers one connector may carry.
MAX_HEADERS = 32
#: The longest default header value (bytes of UTF-8).
MAX_HEADER_VALUE_BYTES = 4096
#: Scopes one OAuth2 connector may ask for.
MAX_SCOPES = 32
#: The largest spec, as JSON: beyond it the spec is refused whole (422 at ``$``).
MAX_SPEC_BYTES = 32 * 1024
#: Connectors one page lists at most.
MAX_PAGE = 100

SecretName = Annotated[str, msgspec.Meta(pattern=SECRET_NAME_PATTERN)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class _Auth(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    """How a connector authenticates; the tag ``kind`` names the way."""


class NoAuth(_Auth, frozen=True, tag="none"):
    """No credentials: a public API, or one reached through a trusted network."""


class BearerAuth(_Auth, frozen=True, tag="bearer"):
    """``Authorization: Bearer <the secret's value>``."""

    secret: SecretName


class BasicAuth(_Auth, frozen=True, tag="basic"):
    """``Authorization: Basic base64(username:<the secret's value>)``."""

    username: ShortText
    password_secret: SecretName


class HeaderAuth(_Auth, frozen=True, tag="header"):
    """The secret's value in the header ``name`` (``X-Api-Key: ...``)."""

    name: ShortText
    secret: SecretName


class QueryAuth(_Auth, frozen=True, tag="query"):
    """The secret's value in the query parameter ``name`` (``?api_key=...``)."""

    name: ShortText
    secret: SecretName


class OAuth2ClientCredentials(_Auth, frozen=True, tag="oauth2_client_credentials"):
    """A token from ``token_url`` (RFC 6749 section 4.4), sent as a bearer token."""

    token_url: Url
    client_id: ShortText
    client_secret: SecretName
    scopes: Annotated[list[ShortText], msgspec.Meta(max_length=MAX_SCOPES)] = []
    audience: ShortText | None = None


Auth = NoAuth | BearerAuth | BasicAuth | HeaderAuth | QueryAuth | OAuth2ClientCredentials
AUTH_KINDS: tuple[str, ...] = ("none", "bearer", "basic", "header", "query",
                               "oauth2_client_credentials")  # fmt: skip


class ConnectorSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``PUT /connectors/{name}`` takes. ``hosts`` absent or null: the base URL's host
    alone."""

    base_url: Url
    hosts: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_HOSTS)] | None = None
    headers: Annotated[dict[str, str], msgspec.Meta(max_length=MAX_HEADERS)] = {}
    auth: Auth


class Connector(msgspec.Struct, frozen=True, kw_only=True):
    """A connector as every reply shows it: names of secrets only, never a value.

    ``hosts`` is the list in force (the base URL's host when none was given);
    ``missing_secrets``: the secrets ``auth`` names that the tenant has not set (yet)."""

    name: str
    base_url: str
    hosts: list[str]
    headers: dict[str, str]
    auth: Auth
    missing_secrets: list[str]
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class ConnectorPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Connector]
    next_cursor: str | None
    has_more: bool


class ConnectorDeleted(msgspec.Struct, frozen=True, kw_only=True):
    """The deleted connector's name and the stored versions that named it, now ``invalid``."""

    name: str
    invalidated: list[VersionRef] = []


# --- the registry's operations -------------------------------------------------------------


class ConnectorPut(Request["Connector"], frozen=True):
    """Create (``version`` 1) or replace (``version`` + 1) the connector ``name``."""

    operation = "connector_put"

    name: str
    spec: ConnectorSpec


class ConnectorGet(Request["Connector"], frozen=True):
    operation = "connector_get"

    name: str


class ConnectorList(Request["ConnectorPage"], frozen=True):
    """Connectors by name, ``limit`` (1..100) a page."""

    operation = "connector_list"

    limit: int = 50
    cursor: str | None = None


class ConnectorDelete(Request["ConnectorDeleted"], frozen=True):
    operation = "connector_delete"

    name: str


def secret_names(auth: Auth) -> list[str]:
    """The secrets ``auth`` names, in field order."""
    match auth:
        case BearerAuth(secret=name) | HeaderAuth(secret=name) | QueryAuth(secret=name):
            return [name]
        case BasicAuth(password_secret=name):
            return [name]
        case OAuth2ClientCredentials(client_secret=name):
            return [name]
    return []
