"""OAuth2 client credentials (RFC 6749 section 4.4) for connectors: fetching and caching
tokens.

A token is asked of the connector's ``token_url`` with a form POST (``grant_type=
client_credentials``, ``client_id``, ``client_secret`` from the tenant's secret, ``scope``
(the scopes joined by spaces) and ``audience`` when set), through the executor's shared
session (so through the SSRF guard), without following redirects. The token URL's scheme
must be http(s) and its host one of the connector's ``hosts``. The answer must be 200 with
a JSON ``access_token`` (and, if any, ``token_type`` ``bearer``); it is read up to
:data:`MAX_TOKEN_ANSWER_BYTES`.

Tokens are cached by :class:`flowmesh_executor.nodes.tokens.TokenCache`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp
import msgspec

from flowmesh_executor.nodes.answers import read_at_most
from flowmesh_executor.nodes.base import StepError
from flowmesh_executor.nodes.ssrf import AddressNotAllowedError

__all__ = ["MAX_TOKEN_ANSWER_BYTES", "TOKEN_FAILED", "fetch_token", "token_url_problem"]

#: A bearer token as RFC 6750 section 2.1 writes one (``b64token``).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: The largest token endpoint answer read.
MAX_TOKEN_ANSWER_BYTES = 64 * 1024
#: The error class of a token that could not be had (retried as the node's policy says).
TOKEN_FAILED = "ConnectorTokenFailed"  # noqa: S105 (an error class)


class _Answer(msgspec.Struct):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the kind, no token)
    expires_in: float | None = None


def token_url_problem(token_url: str, hosts: list[str]) -> str | None:
    """Why the token may not be asked of ``token_url``, or None."""
    try:
        parts = urlsplit(token_url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "its token_url is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "its token_url is not an http(s) URL"
    if "@" in parts.netloc or host not in hosts:
        return "its token_url's host is not one of its hosts"
    return None


async def fetch_token(
    session: aiohttp.ClientSession,
    *,
    connector: str,
    token_url: str,
    form: dict[str, str],
    timeout: float,  # noqa: ASYNC109
) -> tuple[str, float | None]:
    """The token and its ``expires_in``; StepError naming the connector when there is none.
    Messages never quote the answer (it may echo the credentials)."""
    where = f"connector {connector}: the token endpoint {token_url.split('?')[0]}"
    try:
        async with session.post(
            token_url,
            data=form,
            headers={"Accept": "application/json"},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if response.status != 200:
                raise StepError(TOKEN_FAILED, f"{where} answered {response.status}")
            raw = await read_at_most(response.content, MAX_TOKEN_ANSWER_BYTES + 1)
    except TimeoutError:
        raise StepError(TOKEN_FAILED, f"{where} timed out") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressNotAllowedError):
            raise StepError("AddressNotAllowed", f"{where} is a private address") from None
        raise StepError(TOKEN_FAILED, f"{where}: cannot connect") from None
    except aiohttp.ClientError as exc:
        raise StepError(TOKEN_FAILED, f"{where} failed: {type(exc).__name__}") from None
    if len(raw) > MAX_TOKEN_ANSWER_BYTES:
        raise StepError(TOKEN_FAILED, f"{where} answered over {MAX_TOKEN_ANSWER_BYTES} bytes")
    try:
        answer = msgspec.json.decode(raw, type=_Answer)
    except msgspec.DecodeError:
        raise StepError(TOKEN_FAILED, f"{where} answered no access_token") from None
    if not answer.access_token or answer.token_type.lower() != "bearer":
        raise StepError(TOKEN_FAILED, f"{where} answered no bearer access_token")
    if not _BEARER_TOKEN.fullmatch(answer.access_token):  # never cached, never a header
        raise StepError(TOKEN_FAILED, f"{where} answered an access_token that is no b64token")
    return answer.access_token, answer.expires_in
