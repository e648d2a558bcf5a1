"""The console's session (DESIGN section 14): sign in with an API key, who am I, sign out.

The body is the credential: one that holds no key (not JSON, another shape, too large)
answers the same 401 as a bad key. The session id travels in the ``fm_session`` cookie
only; the page keeps the CSRF token it is answered and sends it as ``X-CSRF-Token`` with
every change.
"""

from __future__ import annotations

from aiohttp import web

from flowmesh_gateway.api import CONSOLE, CONSOLE_SESSIONS, Call, Route
from flowmesh_gateway.bodies import json_body, json_response
from flowmesh_gateway.console import check_csrf, clear_cookie, set_cookie
from flowmesh_proto import http as h
from flowmesh_shared.errors import FlowmeshError

PATH = "/console/session"
#: A sign-in body holds one key: a few hundred bytes.
SIGN_IN_BODY_LIMIT = 4096
NO_STORE = {"Cache-Control": "no-store"}


async def sign_in(call: Call) -> web.Response:
    console = call.request.app[CONSOLE_SESSIONS]
    console.take_sign_in(call.request)
    try:
        body = await json_body(call.request, h.ConsoleSignInBody, SIGN_IN_BODY_LIMIT, kept=False)
    except FlowmeshError:  # no key is a bad key: the same 401, counted
        body = h.ConsoleSignInBody(key="")
    session_id, session = await console.sign_in(call.request, body.key, call.request_id)
    response = json_response(console.answer(session, session.role), 201, NO_STORE)
    set_cookie(call.request, response, session_id)
    return response


async def whoami(call: Call) -> web.Response:
    console = call.request.app[CONSOLE_SESSIONS]
    _, session, identity = await console.current(call.request)
    return json_response(console.answer(session, identity.role), 200, NO_STORE)


async def sign_out(call: Call) -> web.Response:
    console = call.request.app[CONSOLE_SESSIONS]
    session_id, session, _ = await console.current(call.request)
    check_csrf(call.request, session)
    await console.sessions.revoke(session_id)
    response = web.Response(status=204, headers=NO_STORE)
    clear_cookie(call.request, response)
    return response


ROUTES = [
    Route(
        method="POST",
        path=PATH,
        handler=sign_in,
        role=CONSOLE,
        status=201,
        summary="Sign in to the console with an API key (sets the fm_session cookie)",
        operation_id="console_sign_in",
        body=h.ConsoleSignInBody,
        response=h.ConsoleSession,
    ),
    Route(
        method="GET",
        path=PATH,
        handler=whoami,
        role=CONSOLE,
        summary="The console session of the fm_session cookie: tenant, role, CSRF token",
        operation_id="console_session",
        response=h.ConsoleSession,
    ),
    Route(
        method="DELETE",
        path=PATH,
        handler=sign_out,
        role=CONSOLE,
        status=204,
        summary="Sign out: revoke the console session (needs X-CSRF-Token)",
        operation_id="console_sign_out",
    ),
]
