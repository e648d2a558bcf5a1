"""The ``http`` step: one HTTP request, its answer as ``{status, headers, body}``.

- Headers the HTTP client owns (``Host``, ``Content-Length``, ``Transfer-Encoding``,
  ``Connection``, ``Proxy-*`` ...: :func:`flowmesh_proto.connector_rules.client_owned_header`)
  are refused with ``InvalidParameters`` before anything is sent: the session's
  connections are shared by every tenant's steps, and a body framed otherwise than it is
  sent would make the next request on the connection part of this one.
- Every request carries ``Idempotency-Key: <run_id>:<node_id>`` (steps are at-least-once)
  and, when the run is traced, ``traceparent``; a header the node sets itself wins.
- ``body``: a dict, list, number or boolean is sent as JSON, a string as text, null as no
  body. The answer's body is decoded JSON when its media type is JSON, else text.
- The status must be in ``expect_status`` (200-299 when empty), else ``HttpStatus``. Bodies
  over ``http_max_response_bytes`` fail with ``ResponseTooLarge``, read as a stream and never
  past the limit.
- Redirects are NOT followed: a 3xx answer is the step's answer like any other, so it fails
  with ``HttpStatus`` unless ``expect_status`` lists it (its ``location`` header is in the
  output). Following a redirect would send the node's headers (credentials included) to
  wherever the server points, and would need every hop checked by the SSRF guard.
- SSRF guard (:mod:`flowmesh_executor.nodes.ssrf`): private, loopback, link-local and
  similar destinations are refused with ``AddressNotAllowed`` unless the deployment allows
  them; host names are checked by the session's resolver at connection time.
- A node may name a ``connector`` and a relative ``path`` instead of ``url``
  (:mod:`flowmesh_executor.nodes.connected`): the joined URL must stay on the connector, and
  the connector's default headers and auth are added (an OAuth2 token joins the step's
  secrets, and the output is redacted of them before it is returned).
- Answers are read by :mod:`.answers` (bounded reads, decoded bodies, redacted excerpts).
- Error messages name the method and the URL without its query or credentials, never a
  header value, at most a short excerpt of a response body, and no secret value. The URL
  they name is the node's ``url`` rendered again with every secret read as ``[redacted]``
  (:func:`shown_url`), never the URL sent: a URL parser lowercases a host, cuts a path at
  ``?`` or ``#``, resolves ``..`` and percent-encodes or decodes, and exact-value redaction
  does not recognise a secret it rewrote (DESIGN section 12).
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from flowmesh_executor.instant import REDACTED, render_parameters
from flowmesh_executor.instant import redact as redact_value
from flowmesh_executor.nodes import connected
from flowmesh_executor.nodes.answers import (
    body_excerpt,
    decode_body,
    read_at_most,
    redact,
    response_headers,
)
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.ssrf import (
    AddressNotAllowedError,
    PublicAddressResolver,
    address_allowed,
    allowed_networks,
    literal_address,
)
from flowmesh_executor.settings import ENV_PREFIX, ExecutorSettings
from flowmesh_proto.connector_rules import client_owned_header
from flowmesh_proto.outputs import HttpOutput
from flowmesh_shared.expressions import ExpressionError, Meter
from flowmesh_shared.settings import variable_name

#: The status that makes an OAuth2 token be dropped (and, from the cache, asked for again).
UNAUTHORIZED = 401
#: Bytes of a failed response read to quote from.
_EXCERPT_READ = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ALLOW_PRIVATE = variable_name(ENV_PREFIX, "http_allow_private")
_ALLOW_NETWORKS = variable_name(ENV_PREFIX, "http_allow_networks")
#: What messages name when the node's url cannot be rendered again for them.
_UNSHOWN = "(the node's url)"


def http_session(settings: ExecutorSettings) -> aiohttp.ClientSession:
    """The session every http step of this process shares (the caller closes it).

    Cookies are never kept (runs of different tenants share the session), and unless
    private destinations are allowed, host names resolve through the SSRF guard.
    """
    resolver: AbstractResolver = ThreadedResolver()
    if not settings.http_allow_private:
        resolver = PublicAddressResolver(resolver, allowed_networks(settings.http_allow_networks))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
    )


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A node's parameters checked and converted into what is sent."""

    method: str
    url: URL
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes | None
    expect_status: frozenset[int]
    #: The URL messages name (:func:`shown_url`), never :attr:`url`.
    shown: str = _UNSHOWN
    #: Every status is an answer (an action reads it), none fails the request.
    any_status: bool = False

    @property
    def where(self) -> str:
        """Method and URL for messages: secrets redacted, no credentials, query or fragment."""
        return f"{self.method} {self.shown}"

    @property
    def shown_authority(self) -> str:
        """The host (and port, if the node wrote one) of :attr:`shown`."""
        _, sep, rest = self.shown.partition("://")  # shown: no user info, query or fragment
        return rest.partition("/")[0] if sep else _UNSHOWN

    @property
    def shown_host(self) -> str:
        """The host of :attr:`shown` (an IPv6 literal in its brackets)."""
        authority = self.shown_authority
        inside, closed, after = authority.removeprefix("[").partition("]")
        if authority.startswith("[") and closed and (not after or after.startswith(":")):
            return f"[{inside}]"
        return authority.partition(":")[0]

    def expects(self, status: int) -> bool:
        if self.any_status:
            return True
        return status in self.expect_status if self.expect_status else 200 <= status <= 299


async def run(call: StepCall, services: StepServices) -> Any:
    """Send the node's request; its answer is the output."""
    return await exchange(call, services, build_request)


async def exchange(
    call: StepCall,
    services: StepServices,
    build: Callable[[StepCall], HttpRequest],
    read: Callable[[dict[str, Any], Mapping[str, str]], Awaitable[Any]] | None = None,
) -> Any:
    """The one way a step sends a request: the connector's OAuth2 token got first (the
    token URL checked by the SSRF guard), the request ``build`` makes from the call (with
    that token among its secrets) checked and sent, and the answer (``{status, headers,
    body}``) made the output by ``read`` (given the step's secrets) when given. The output
    and every error are redacted of the token (the engine redacts the run's own secrets)."""
    given, secrets, refused = call, call.secrets, list[str]()

    def check(url: URL) -> None:
        check_destination(url, services.settings)

    try:
        call, used = await connected.with_token(given, services, check)
        secrets = call.secrets
        try:
            output: Any = await _send_built(call, services, build)
            status = output.get("status")
        except StepError as exc:
            if used is None or exc.status != UNAUTHORIZED:
                raise
            output, status = exc, exc.status
        if used is not None and status == UNAUTHORIZED:
            # the token was refused: never use it again; one from the cache may have been
            # revoked or rotated early, so ask for a new one and send once more
            refused.append(used.token)
            connected.drop_token(services, used)
            if used.cached:
                call, used = await connected.with_token(given, services, check)
                secrets = call.secrets
                output = await _send_built(call, services, build)
            elif isinstance(output, StepError):
                raise output
        if read is not None:
            output = await read(output, secrets)
        # an OAuth2 token is no secret of the run: the engine would not redact it
        hidden = {**secrets, **{f"refused:{n}": token for n, token in enumerate(refused)}}
        return output if call is given else redact_value(output, hidden)
    except StepError as exc:
        message = redact(exc.message, [*secrets.values(), *refused])
        raise StepError(exc.error_class, message, status=exc.status) from None


async def _send_built(
    call: StepCall, services: StepServices, build: Callable[[StepCall], HttpRequest]
) -> dict[str, Any]:
    """Build the call's request, check its destination, send it: the answer."""
    request = build(call)
    check_destination(request.url, services.settings, named=request.shown_host)
    return await send(services.http, request, services.settings, call)


def build_request(call: StepCall) -> HttpRequest:
    """Check and convert ``call.parameters``; InvalidParameters names what cannot be sent."""
    params = call.parameters
    return assemble(
        call,
        method=params.get("method", "GET"),
        url=params.get("url"),
        connector=params.get("connector"),
        path=params.get("path"),
        headers=params.get("headers"),
        query=params.get("query"),
        body=params.get("body"),
        expect_status=params.get("expect_status"),
        shown=shown_url(call),
    )


def assemble(
    call: StepCall,
    *,
    method: object,
    url: object,
    connector: object,
    path: object,
    headers: object,
    query: object,
    body: object,
    expect_status: object,
    shown: str,
    any_status: bool = False,
) -> HttpRequest:
    """The request a step sends (an http node's, an action's): checked and converted, to
    ``url`` or (when ``connector`` is given) to ``path`` on the connector with its default
    headers and auth, with the idempotency key and trace context; InvalidParameters names
    what cannot be sent. ``any_status``: every answer is the step's to read."""
    sent_headers = _headers(headers)
    sent_query = _strings("query parameter", query)
    if connector is None:
        target = _url(url)
    else:
        found = connected.connector_of(call, connector)
        target = connected.destination(found, path)
        connected.merge_defaults(sent_headers, found.headers)
        connected.add_credentials(found, sent_headers, sent_query, call.secrets)
    _set_default(sent_headers, "Idempotency-Key", call.idempotency_key)
    if call.traceparent:
        _set_default(sent_headers, "traceparent", call.traceparent)
    encoded = _body(body, sent_headers)
    return HttpRequest(
        method=_method(method),
        url=target,
        headers=sent_headers,
        query=sent_query,
        body=encoded,
        expect_status=_expect_status(expect_status),
        shown=shown,
        any_status=any_status,
    )


def shown_url(call: StepCall) -> str:
    """The URL messages name: the node's ``url`` rendered again with every secret read as
    ``[redacted]``, as written (not normalised), without credentials, query or fragment."""
    raw = getattr(call.node.parameters, "url", None)
    name = getattr(call.node.parameters, "connector", None)
    prefix = ""
    if isinstance(name, str):  # the connector's base URL, then the path as written
        raw = getattr(call.node.parameters, "path", None)
        connector = call.connectors.get(name)
        prefix = connector.base_url.rstrip("/") if connector else f"(connector {name})"
    placeholders = dict.fromkeys(call.secrets, REDACTED)
    try:
        rendered = render_parameters(
            "http", {"url": raw}, call.variables, placeholders, Meter(call.expression_budget)
        )["url"]
    except ExpressionError:
        return _UNSHOWN
    if not isinstance(rendered, str) or not rendered:
        return _UNSHOWN
    return shown_form(prefix + rendered)


def shown_form(rendered: str) -> str:
    """A URL as messages name it: as written, without credentials, query or fragment."""
    before_query = re.split(r"[?#]", rendered, maxsplit=1)[0]
    scheme, sep, rest = before_query.partition("://")
    if not sep:
        return before_query
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def check_destination(url: URL, settings: ExecutorSettings, *, named: str | None = None) -> None:
    """Refuse an IP-literal host the SSRF guard does not allow (names: the resolver's job).

    ``named``: the host as messages name it (:attr:`HttpRequest.shown_host`).
    """
    if settings.http_allow_private:
        return
    host = url.host or ""
    named = host if named is None else named
    try:
        address = literal_address(host)
    except ValueError:
        message = f"url: {named} is not a canonical IP address"
        raise StepError("InvalidParameters", message) from None
    allowed = allowed_networks(settings.http_allow_networks)
    if address is not None and not address_allowed(address, allowed):
        raise StepError("AddressNotAllowed", _refusal(named))


async def send(
    session: aiohttp.ClientSession,
    request: HttpRequest,
    settings: ExecutorSettings,
    call: StepCall,
) -> dict[str, Any]:
    """Send ``request``; translate the answer into the output and failures into StepError."""
    timeout = settings.http_default_timeout if call.deadline is None else None
    try:
        async with session.request(
            request.method,
            request.url,
            headers=request.headers,
            params=request.query,
            data=request.body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return await _answer(request, response, settings, call.secrets.values())
    except TimeoutError:
        after = "" if timeout is None else f" after {timeout:g} s"
        raise StepError("HttpError", f"{request.where} timed out{after}") from None
    except aiohttp.ClientConnectorError as exc:
        raise _connect_error(request, exc) from None
    except aiohttp.InvalidURL:
        raise StepError("InvalidParameters", f"url: {request.where} is not valid") from None
    except aiohttp.ClientError as exc:
        message = f"{request.where} failed: {type(exc).__name__}"
        raise StepError("HttpError", message) from None
    except ValueError:
        message = f"{request.where} cannot be sent: a header or parameter is malformed"
        raise StepError("InvalidParameters", message) from None


async def _answer(
    request: HttpRequest,
    response: aiohttp.ClientResponse,
    settings: ExecutorSettings,
    secrets: Iterable[str],
) -> dict[str, Any]:
    status = response.status
    if not request.expects(status):
        raw = await read_at_most(response.content, _EXCERPT_READ)
        message = f"{request.where} answered {status}"
        excerpt = body_excerpt(raw, secrets, cut=len(raw) >= _EXCERPT_READ)
        if excerpt:
            message += f": {excerpt}"
        if 300 <= status <= 399:
            message += f" (redirects are not followed; list {status} in expect_status)"
        raise StepError("HttpStatus", message, status=status)
    limit = settings.http_max_response_bytes
    too_large = f"{request.where} answered a body over {limit} bytes"
    if response.content_length is not None and response.content_length > limit:
        raise StepError("ResponseTooLarge", too_large)
    raw = await read_at_most(response.content, limit + 1)
    if len(raw) > limit:
        raise StepError("ResponseTooLarge", too_large)
    output = HttpOutput(
        status=status,
        headers=response_headers(response.headers),
        body=decode_body(raw, response.content_type, response.charset),
    )
    answer: dict[str, Any] = msgspec.to_builtins(output)
    return answer


def _connect_error(request: HttpRequest, exc: aiohttp.ClientConnectorError) -> StepError:
    """The failure, naming the host as the node wrote it (never ``exc.host``: normalised)."""
    if isinstance(exc.os_error, AddressNotAllowedError):
        return StepError("AddressNotAllowed", _refusal(request.shown_host))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return StepError("HttpError", f"{request.where}: cannot resolve host {request.shown_host}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return StepError("HttpError", f"{request.where}: TLS failed with {request.shown_authority}")
    errno = exc.os_error.errno
    reason = os.strerror(errno) if errno else exc.strerror or type(exc.os_error).__name__
    where = request.shown_authority
    return StepError("HttpError", f"{request.where}: cannot connect to {where} ({reason})")


def _refusal(host: str) -> str:
    return (
        f"{host} resolves to a private address; set {_ALLOW_PRIVATE}=true to allow it, "
        f"or name its network in {_ALLOW_NETWORKS}"
    )


# --- parameters -------------------------------------------------------------------------


def _url(value: object) -> URL:
    if not isinstance(value, str) or not value:
        raise StepError("InvalidParameters", "url must be a non-empty string")
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise StepError("InvalidParameters", "url is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise StepError("InvalidParameters", "url must be an http or https URL")
    if not url.host:
        raise StepError("InvalidParameters", "url has no host")
    return url


def _method(value: object) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise StepError("InvalidParameters", "method must be an HTTP method name")
    return value.upper()


def _headers(value: object) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, text in _strings("header", value).items():
        if not _TOKEN.fullmatch(name):
            raise StepError("InvalidParameters", f"header name {name[:64]!r} is not valid")
        if client_owned_header(name):  # connections are shared by every tenant's steps
            raise StepError("InvalidParameters", f"header {name} is set by the HTTP client")
        if any(c in text for c in "\r\n\0"):
            raise StepError("InvalidParameters", f"header {name} holds a line break or NUL")
        headers[name] = text
    return headers


def _strings(what: str, value: object) -> dict[str, str]:
    """A map of names to scalars as strings (JSON spelling for booleans)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StepError("InvalidParameters", f"{what}s must be a map of names to strings")
    converted: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str):
            raise StepError("InvalidParameters", f"{what} names must be strings")
        if isinstance(item, bool):
            converted[name] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            converted[name] = str(item)
        else:
            kind = "null" if item is None else type(item).__name__
            message = f"{what} {name[:64]} must be a string, number or boolean, not {kind}"
            raise StepError("InvalidParameters", message)
    return converted


def _set_default(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header unless the node set it (in any letter case)."""
    if name.lower() not in {key.lower() for key in headers}:
        headers[name] = value


def _body(value: object, headers: dict[str, str]) -> bytes | None:
    """Encode the body, setting a content type unless the node set one."""
    if value is None:
        return None
    if isinstance(value, str):
        _set_default(headers, "Content-Type", "text/plain; charset=utf-8")
        return value.encode()
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError, msgspec.EncodeError):
        raise StepError("InvalidParameters", "body cannot be encoded as JSON") from None
    _set_default(headers, "Content-Type", "application/json")
    return encoded


def _expect_status(value: object) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list | tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in value
    ):
        raise StepError("InvalidParameters", "expect_status must be a list of status codes")
    return frozenset(value)
