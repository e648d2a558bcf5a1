"""An ``http`` step through a connector (DESIGN section 16): where it goes, what it adds.

The node names ``connector`` and a relative ``path``. The rendered path must pass the
path rule (:func:`flowmesh_proto.connector_paths.path_problem`), is joined to the
connector's ``base_url``, and the joined URL, as parsed, must keep the base URL's scheme,
host (or one of the connector's ``hosts``) and port and stay under its path; otherwise the
step fails with ``ConnectorRefused``, never retried. The SSRF guard still checks the
destination afterwards.

Headers: the node's own, then the connector's defaults for names the node did not set
(letter case ignored), then the connector's auth, which replaces a header of its name:

- ``bearer``: ``Authorization: Bearer <secret>``; ``basic``:
  ``Authorization: Basic base64(username:<secret>)``; ``header``: ``<name>: <secret>``;
- ``query``: the query parameter ``<name>=<secret>`` (replacing the node's of that name);
- ``oauth2_client_credentials``: ``Authorization: Bearer <token>``, the token from the
  connector's ``token_url`` (:mod:`.oauth2`), cached per (tenant, connector, version)
  and what it was asked with (:func:`token_cache_key`, :mod:`.tokens`); it joins the
  step's secrets, so it is redacted from the step's output and errors like them.

The secrets are resolved with the run's other secrets when the run is taken up, so they
are redacted from everything the run records like any secret; the ``basic`` header value
is added to them too (:func:`credential_forms`). A secret the tenant has not set fails the
step with ``ConnectorSecretMissing``, naming the secret (never a value).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping

import msgspec
from yarl import URL

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.oauth2 import TOKEN_FAILED, fetch_token, token_url_problem
from flowmesh_executor.nodes.tokens import TokenKey, kept_until
from flowmesh_proto.connector_paths import destination_problem, join, path_problem
from flowmesh_proto.connectors import (
    BasicAuth,
    BearerAuth,
    Connector,
    HeaderAuth,
    NoAuth,
    OAuth2ClientCredentials,
    QueryAuth,
)

__all__ = [
    "REFUSED",
    "TokenUse",
    "add_credentials",
    "connector_of",
    "credential_forms",
    "destination",
    "drop_token",
    "merge_defaults",
    "set_header",
    "token_cache_key",
    "token_key",
    "with_token",
]

#: The error class of a request that would leave its connector (never retried).
REFUSED = "ConnectorRefused"
MISSING_SECRET = "ConnectorSecretMissing"  # noqa: S105 (an error class)
NOT_FOUND = "ConnectorNotFound"


def connector_of(call: StepCall, name: object) -> Connector:
    """The connector ``name`` the run read when it was taken up."""
    if not isinstance(name, str) or not name:
        raise StepError("InvalidParameters", "connector must be a connector's name")
    connector = call.connectors.get(name)
    if connector is None:
        raise StepError(NOT_FOUND, f"connector {name} does not exist (deleted since validation?)")
    return connector


def destination(connector: Connector, path: object) -> URL:
    """``path`` joined to the connector's base URL, or ``ConnectorRefused`` saying why."""
    if not isinstance(path, str):
        raise StepError("InvalidParameters", "path must be a string starting with '/'")
    problem = path_problem(path)
    joined = join(connector.base_url, path)
    if problem is None:
        problem = destination_problem(joined, connector.base_url, connector.hosts)
    if problem is None:
        try:
            url = URL(joined)
        except (ValueError, TypeError):
            problem = "the joined URL is not a valid URL"
        else:  # as the client will send it: yarl normalises and encodes
            problem = destination_problem(str(url), connector.base_url, connector.hosts)
    if problem is not None:
        raise StepError(REFUSED, f"connector {connector.name}: {problem}")
    return url


def merge_defaults(headers: dict[str, str], defaults: Mapping[str, str]) -> None:
    """Add each default header the node did not set itself (letter case ignored)."""
    present = {name.lower() for name in headers}
    for name, value in defaults.items():
        if name.lower() not in present:
            headers[name] = value


def set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name``, replacing a header of that name in any letter case."""
    for key in [key for key in headers if key.lower() == name.lower()]:
        del headers[key]
    headers[name] = value


def add_credentials(
    connector: Connector,
    headers: dict[str, str],
    query: dict[str, str],
    secrets: Mapping[str, str],
) -> None:
    """Add the connector's auth to ``headers`` or ``query``."""

    def value(secret: str) -> str:
        return secret_value(connector, secret, secrets)

    match connector.auth:
        case NoAuth():
            pass
        case BearerAuth(secret=secret):
            set_header(headers, "Authorization", f"Bearer {value(secret)}")
        case BasicAuth(username=username, password_secret=secret):
            set_header(headers, "Authorization", f"Basic {basic_token(username, value(secret))}")
        case HeaderAuth(name=name, secret=secret):
            set_header(headers, name, value(secret))
        case QueryAuth(name=name, secret=secret):
            query[name] = value(secret)
        case OAuth2ClientCredentials():  # the token :func:`with_token` got
            token = secrets.get(token_key(connector.name))
            if token is None:
                raise StepError(TOKEN_FAILED, f"connector {connector.name}: no token")
            set_header(headers, "Authorization", f"Bearer {token}")


def token_key(connector: str) -> str:
    """Where :func:`with_token` puts a connector's OAuth2 token among a step's secrets."""
    return f"connector:{connector}:token"


@dataclasses.dataclass(frozen=True, slots=True)
class TokenUse:
    """The OAuth2 token a step sent: where the cache keeps it, and whether it came from the
    cache (else it was just asked for)."""

    key: TokenKey
    token: str
    cached: bool


async def with_token(
    call: StepCall, services: StepServices, check: Callable[[URL], None]
) -> tuple[StepCall, TokenUse | None]:
    """``call`` with its connector's OAuth2 token among its secrets (so redacted like them),
    from the cache or asked of the token endpoint (checked by ``check``, the SSRF guard's
    IP-literal check, first), and how it got the token; ``call`` itself and None for any
    other request."""
    name = call.parameters.get("connector")
    if name is None:
        return call, None
    connector = connector_of(call, name)
    auth = connector.auth
    if not isinstance(auth, OAuth2ClientCredentials):
        return call, None
    problem = token_url_problem(auth.token_url, connector.hosts)
    if problem is not None:
        raise StepError(REFUSED, f"connector {connector.name}: {problem}")
    key = token_cache_key(call.tenant, connector)
    token = services.tokens.get(key, time.monotonic())
    cached = token is not None
    if token is None:
        check(URL(auth.token_url))
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": secret_value(connector, auth.client_secret, call.secrets),
        }
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        if auth.audience is not None:
            form["audience"] = auth.audience
        token, expires_in = await fetch_token(
            services.http,
            connector=connector.name,
            token_url=auth.token_url,
            form=form,
            timeout=services.settings.http_default_timeout,
        )
        now = time.monotonic()
        services.tokens.put(key, token, kept_until(now, expires_in), now)
    secrets = {**call.secrets, token_key(connector.name): token}
    return dataclasses.replace(call, secrets=secrets), TokenUse(key, token, cached)


def token_cache_key(tenant: str, connector: Connector) -> TokenKey:
    """Where a connector's token is cached: by tenant, name and version, and by what the
    token was asked for with (base URL, hosts, auth): a connector deleted and made again
    starts at version 1 once more, and must never be sent the old one's token."""
    held = msgspec.json.encode([connector.base_url, connector.hosts, connector.auth])
    return (tenant, connector.name, connector.version, hashlib.sha256(held).digest())


def drop_token(services: StepServices, used: TokenUse) -> None:
    """Forget a token the server refused (401), unless another step already replaced it."""
    services.tokens.drop(used.key, used.token)


def secret_value(connector: Connector, name: str, secrets: Mapping[str, str]) -> str:
    """The value of the secret ``name`` the connector's auth names, or a step error."""
    if name not in secrets:
        raise StepError(MISSING_SECRET, f"connector {connector.name}: secret {name} is not set")
    return secrets[name]


def basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def credential_forms(
    connectors: Mapping[str, Connector], secrets: Mapping[str, str]
) -> dict[str, str]:
    """Values sent that are not a secret as it is (a ``basic`` header's token), keyed by
    names no template can read, to redact with the run's secrets."""
    forms: dict[str, str] = {}
    for name, connector in connectors.items():
        auth = connector.auth
        if isinstance(auth, BasicAuth) and auth.password_secret in secrets:
            token = basic_token(auth.username, secrets[auth.password_secret])
            forms[f"connector:{name}:basic"] = token
    return forms
