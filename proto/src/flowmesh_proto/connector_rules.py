"""The rules a connector must follow beyond its shape (pure: data in, problems out).

:func:`connector_problems` answers every problem of a connector at its path (``base_url``,
``hosts[1]``, ``headers["X-Trace"]``, ``auth.secret`` ...), each VALIDATION_FAILED:

- ``base_url`` and an OAuth2 ``token_url`` are absolute ``https`` or ``http`` URLs with a
  host, without credentials (``user:pass@``), query or fragment, spaces or backslashes;
- ``hosts`` are lowercase host names or IP addresses, each once; the base URL's host and
  the token URL's host must be among them (no ``hosts``: the base URL's host alone, so a
  token URL on another host needs ``hosts`` written out): the hosts are every place the
  connector's credentials may be sent;
- default ``headers`` have valid names that are neither framing nor hop-by-hop headers
  (``Host``, ``Content-Length``, ``Connection`` ...) nor able to carry a credential in
  plain text (``Authorization``, ``Cookie``, or a name holding ``auth``, ``token``,
  ``secret``, ``passw``, ``apikey``, ``credential``, ``session``, ``signature``):
  credentials go through ``auth``, by a secret's name;
- no string holds a control character (U+0000 cannot even be stored).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import msgspec

from flowmesh_proto.connectors import (
    CONNECTOR_NAME_PATTERN,
    MAX_HEADER_VALUE_BYTES,
    MAX_SPEC_BYTES,
    Auth,
    BasicAuth,
    ConnectorSpec,
    HeaderAuth,
    OAuth2ClientCredentials,
    QueryAuth,
)
from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.storable import json_path

_NAME_RE = re.compile(CONNECTOR_NAME_PATTERN)
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
#: An HTTP field name (RFC 9110 token), at most 64 characters.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
#: A query parameter name made of URL-unreserved characters only.
_QUERY_NAME_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")
#: An OAuth2 scope token (RFC 6749 section 3.3).
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_VALUE_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a header value may hold a tab

#: Headers the HTTP client owns: framing, routing and hop-by-hop ones.
FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
#: Headers that carry credentials by definition.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: Words that make a default header name look like a credential's (compared without ``-``
#: and ``_``, in lowercase).
CREDENTIAL_WORDS = (
    "auth",
    "token",
    "secret",
    "passw",
    "apikey",
    "credential",
    "session",
    "signature",
)


def client_owned_header(name: str) -> bool:
    """Whether the HTTP client owns the header ``name`` (framing, routing, hop-by-hop, and
    ``Proxy-*``): no connector, action or http node may set it. The executor's session
    shares its connections among every tenant's steps, so a ``Content-Length`` or
    ``Transfer-Encoding`` that does not frame the body sent would make the next request on
    the connection (another tenant's) part of this one, and a ``Host`` would send the
    connector's credentials to another virtual host at its address."""
    lowered = name.lower()
    return lowered in FRAMING_HEADERS or lowered.startswith("proxy-")


def is_connector_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def connector_hosts(spec: ConnectorSpec) -> list[str]:
    """The hosts in force: those listed, else the base URL's host alone."""
    if spec.hosts is not None:
        return list(spec.hosts)
    host = _host_of(spec.base_url)
    return [host] if host else []


def connector_problems(name: str, spec: ConnectorSpec) -> list[ProblemItem]:
    """Every problem of the connector ``name`` with ``spec``, each at its path."""
    problems: list[ProblemItem] = []
    if not is_connector_name(name):
        problems.append(_problem("name", f"a connector name matches {CONNECTOR_NAME_PATTERN}"))
    size = len(msgspec.json.encode(spec))
    if size > MAX_SPEC_BYTES:
        return [*problems, _problem("$", f"{size} bytes; a connector has at most {MAX_SPEC_BYTES}")]
    problems += _url_problems("base_url", spec.base_url)
    hosts = connector_hosts(spec)
    if spec.hosts is not None:
        problems += _hosts_problems(spec.hosts)
    base_host = _host_of(spec.base_url)
    if base_host and spec.hosts is not None and base_host not in hosts:
        problems.append(_problem("base_url", f"its host {base_host} is not in hosts"))
    problems += _headers_problems(spec.headers)
    problems += _auth_problems(spec.auth, hosts)
    auth = spec.auth
    if isinstance(auth, HeaderAuth) and auth.name.lower() in {h.lower() for h in spec.headers}:
        problems.append(_problem("auth.name", f"{auth.name} is also a default header"))
    return problems


def _problem(path: str, message: str) -> ProblemItem:
    return ProblemItem(path=path, code=ErrorCode.VALIDATION_FAILED.name, message=message)


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _url_problems(path: str, url: str) -> list[ProblemItem]:
    if _CONTROL_RE.search(url) or " " in url or "\\" in url:
        return [_problem(path, "a URL holds no spaces, backslashes or control characters")]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        return [_problem(path, "not a valid URL")]
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return [_problem(path, "an absolute https (or http) URL")]
    if "@" in parts.netloc:
        return [_problem(path, "credentials in a URL are refused: name a secret in auth")]
    if "?" in url or "#" in url:
        return [_problem(path, "a URL without query or fragment")]
    host = parts.hostname or ""
    if _host_problem(host):
        return [_problem(path, f"{host or 'no host'}: not a valid host name")]
    return []


def _host_problem(host: str) -> bool:
    if _HOSTNAME_RE.fullmatch(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _hosts_problems(hosts: list[str]) -> list[ProblemItem]:
    problems = []
    seen: set[str] = set()
    for i, host in enumerate(hosts):
        if _host_problem(host):
            message = "a lowercase host name or IP address, without scheme, port or path"
            problems.append(_problem(f"hosts[{i}]", message))
        elif host in seen:
            problems.append(_problem(f"hosts[{i}]", f"{host} is listed twice"))
        seen.add(host)
    return problems


def _header_name_problem(name: str, *, default: bool) -> str | None:
    if not _HEADER_NAME_RE.fullmatch(name):
        return "a header name is an HTTP token of 1 to 64 characters"
    if client_owned_header(name):
        return f"{name} is set by the HTTP client, not by a connector"
    lowered = name.lower()
    if not default:
        return None
    squeezed = lowered.replace("-", "").replace("_", "")
    if lowered in CREDENTIAL_HEADERS or any(word in squeezed for word in CREDENTIAL_WORDS):
        return f"{name} could carry a credential in plain text: use auth, with a secret's name"
    return None


def _headers_problems(headers: dict[str, str]) -> list[ProblemItem]:
    problems = []
    for name, value in headers.items():
        path = json_path(("headers", name))
        problem = _header_name_problem(name, default=True)
        if problem is not None:
            problems.append(_problem(path, problem))
        elif _VALUE_CONTROL_RE.search(value):
            problems.append(_problem(path, "a header value holds no control characters"))
        elif len(value.encode()) > MAX_HEADER_VALUE_BYTES:
            problems.append(_problem(path, f"a header value has at most {MAX_HEADER_VALUE_BYTES}"))
    return problems


def _auth_problems(auth: Auth, hosts: list[str]) -> list[ProblemItem]:
    match auth:
        case HeaderAuth(name=name):
            problem = _header_name_problem(name, default=False)
            return [_problem("auth.name", problem)] if problem else []
        case QueryAuth(name=name):
            if _QUERY_NAME_RE.fullmatch(name):
                return []
            return [_problem("auth.name", "a query name is 1 to 64 of A-Z a-z 0-9 . _ ~ -")]
        case BasicAuth(username=username):
            if ":" in username or _CONTROL_RE.search(username):
                return [_problem("auth.username", "no colon and no control characters")]
            return []
        case OAuth2ClientCredentials():
            return _oauth2_problems(auth, hosts)
    return []


def _oauth2_problems(auth: OAuth2ClientCredentials, hosts: list[str]) -> list[ProblemItem]:
    problems = _url_problems("auth.token_url", auth.token_url)
    host = _host_of(auth.token_url)
    if not problems and host not in hosts:
        message = f"its host {host} is not in the connector's hosts: list it there"
        problems.append(_problem("auth.token_url", message))
    if _CONTROL_RE.search(auth.client_id):
        problems.append(_problem("auth.client_id", "no control characters"))
    for i, scope in enumerate(auth.scopes):
        if not _SCOPE_RE.fullmatch(scope):
            problems.append(_problem(f"auth.scopes[{i}]", "a scope has no spaces or quotes"))
    if auth.audience is not None and _CONTROL_RE.search(auth.audience):
        problems.append(_problem("auth.audience", "no control characters"))
    return problems
