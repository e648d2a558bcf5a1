"""One gateway, one tenant, one key: requests over aiohttp, answers or our errors.

The only module that touches aiohttp's requests: connection errors become
:class:`ConnectionFailed` naming the URL, refusals the :mod:`flowmesh_client.errors` class
of their status (the problem+json read for its code, detail and errors), and safe requests
are asked again as :mod:`flowmesh_client.retry` decides.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import version
from typing import Any, TypeVar

import aiohttp
import msgspec

from flowmesh_client.config import Target
from flowmesh_client.errors import BadAnswer, ConnectionFailed, FlowmeshError, from_problem
from flowmesh_client.retry import RetryPolicy, parse_retry_after
from flowmesh_proto.errors import Problem

_problem_decoder = msgspec.json.Decoder(Problem)
_encoder = msgspec.json.Encoder()
MAX_ERROR_BODY = 64 * 1024
T = TypeVar("T")
Query = Mapping[str, str | int | bool | None]


class Answer(msgspec.Struct, frozen=True):
    """A successful answer: its status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str


class Transport:
    """Requests to ``target`` over a session of its own (closed by :meth:`close`)."""

    def __init__(
        self,
        target: Target,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 75.0,
        user_agent: str | None = None,
    ) -> None:
        self.target = target
        self.retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10.0)
        agent = user_agent or f"flowmesh-client/{version('flowmesh-client')}"
        self._headers = {"User-Agent": agent, "Authorization": f"Bearer {target.api_key}"}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        json: Any = None,
        content: bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        keyed: bool = False,
    ) -> Answer:
        """``method path`` (a path from the server's root), retried when it is safe."""
        data = content if content is not None else (None if json is None else _encoder.encode(json))
        sent = dict(headers or {})
        if data is not None:
            sent["Content-Type"] = content_type
        params = _params(query)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, params, data, sent)
            except FlowmeshError as exc:
                status = exc.status
                if isinstance(exc, ConnectionFailed):
                    status = None
                elif status is None:
                    raise
                wait = self.retry.delay(
                    method=method,
                    keyed=keyed,
                    attempt=attempt,
                    status=status,
                    retry_after=getattr(exc, "retry_after", None),
                )
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        data: bytes | None,
        headers: dict[str, str],
    ) -> Answer:
        url = self.target.url + path
        try:
            async with self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status >= 400:
                    raise await refusal(resp)
                body = await resp.read()
                return Answer(resp.status, dict(resp.headers), body, resp.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(self.target.url, reason(exc)) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, query: Query | None, headers: Mapping[str, str], idle_timeout: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open streaming answer (Server-Sent Events); refusals raised as errors."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=idle_timeout)
        url = self.target.url + path
        async with self.session.get(
            url, params=_params(query), headers=dict(headers), timeout=timeout
        ) as resp:
            if resp.status >= 400:
                raise await refusal(resp)
            yield resp


def decode(answer: Answer, kind: type[T]) -> T:
    """The answer's JSON body as ``kind``."""
    try:
        return msgspec.json.decode(answer.body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadAnswer(f"the gateway answered {answer.body[:200]!r}: {exc}") from exc


async def refusal(resp: aiohttp.ClientResponse) -> FlowmeshError:
    """Our error for an answer of 400 or more, its problem+json read."""
    body = await resp.content.read(MAX_ERROR_BODY)
    try:
        problem: Problem | None = _problem_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError, RecursionError):
        problem = None
    text = body.decode(errors="replace") or (resp.reason or "")
    return from_problem(
        resp.status, problem, text, parse_retry_after(resp.headers.get("Retry-After"))
    )


def _params(query: Query | None) -> dict[str, str]:
    if not query:
        return {}
    out: dict[str, str] = {}
    for name, value in query.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
