"""A bounded property-based fuzz run of the whole HTTP API: schemathesis against the
gateway's own ``/openapi.json``, one test per operation of the document.

As the tenant's admin (the platform admin for ``/admin`` routes), with the ``tenant`` path
parameter fixed to that tenant so requests get past the guard into the handlers and the
registry, each operation gets schema-valid and schema-violating requests. Where a path
names a resource (a workflow, a key, a secret, a tenant), about half of the examples name
a fresh, real one, so updates, patches, locks, clones and deletes reach past the 404.
Every response must be: never a 5xx; a documented status with a documented content type
and a body that matches its schema; a refusal (4xx) for schema-violating input; no 4xx but
a 422 for schema-valid input (the API judges more than JSON Schema can say: the DAG,
expressions, name patterns); and every error an RFC 9457 problem with ``code``, ``status``
and the response's ``request_id``.

A smaller pass sends each secured operation without credentials or with broken ones: the
answer is always a 401 (or a 404/405 for a path the router does not match), a problem,
never a 5xx.

Bounded and reproducible: a fixed number of examples per operation, Hypothesis
derandomized, no example database, no shrinking (a failure shows its example and a curl
command that replays it). The stack is the module's own (``conftest.py``); schemathesis
calls block, so each operation's run goes to a worker thread while the event loop serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from flowmesh_gateway.openapi import build_document
from flowmesh_gateway.problems import PROBLEM_JSON
from flowmesh_gateway.routes import ROUTES

from .conftest import FuzzTarget

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

EXAMPLES = 25  # per operation, as an admin
REFUSED_EXAMPLES = 30  # per secured operation, spread over BROKEN_CREDENTIALS
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)

#: No credentials, another scheme, an unknown key, a JWT signed by nobody, an alg=none JWT.
BROKEN_CREDENTIALS: tuple[dict[str, str], ...] = (
    {},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer fm_0000000000000000000000000000000000000000"},
    {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnQiOiJ4In0.c2lnbmF0dXJl"},
    {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXX0."},
)

#: Where the checks differ from schemathesis's defaults: positive data may meet a 422.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            },
        },
    }
)

#: Query parameters held fixed per path (none now: the registry bug that needed one is fixed).
FIXED_QUERY: dict[str, dict[str, str]] = {}

DOCUMENT = build_document(ROUTES)
OPERATIONS = [(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item]
#: Server-Sent Events never end on their own (a tenant's) or not soon (a run's): an example
#: reads what comes within this many seconds, then stops; the events read are validated.
STREAM_READ_SECONDS = 0.5
STREAMING = {
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if "text/event-stream" in operation["responses"].get("200", {}).get("content", {})
}
SECURED = [(m, p) for m, p in OPERATIONS if DOCUMENT["paths"][p][m.lower()]["security"]]


def _ids(operations: list[tuple[str, str]]) -> list[str]:
    return [f"{method} {path}" for method, path in operations]


def _is_platform(method: str, path: str) -> bool:
    return bool(DOCUMENT["paths"][path][method.lower()]["security"] == [{"adminToken": []}])


# --- checks, on top of schemathesis's own --------------------------------------------


def _header(response: Any, name: str) -> str:
    """One header of a schemathesis response (its keys are lower case, its values lists)."""
    values = response.headers.get(name) or [""]
    return str(values[0])


def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx is problem+json with its code, status and request id."""
    if response.status_code < 400:
        return
    content_type = _header(response, "content-type")
    assert content_type.startswith(PROBLEM_JSON), f"a {response.status_code} as {content_type}"
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert body.get("request_id") == _header(response, "x-request-id"), body
    assert "Traceback" not in response.text


def refused(ctx: Any, response: Any, case: Any) -> None:
    """Without valid credentials nothing gets past the guard."""
    assert response.status_code in (401, 404, 405), f"{response.status_code} without credentials"


# --- running one operation's examples in a worker thread -------------------------------


def _settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def _strategy(operation: Any, **fixed: Any) -> st.SearchStrategy[Any]:
    """Schema-valid and schema-violating cases, with ``fixed`` parts as given."""
    return st.one_of([operation.as_strategy(mode, **fixed) for mode in MODES])


def _fuzz(
    strategy: st.SearchStrategy[Any],
    examples: int,
    call: Callable[[Any, requests.Session], None],
) -> None:
    """Blocking: ``examples`` cases of ``strategy``, each passed to ``call``."""
    with requests.Session() as session:

        @_settings(examples)
        @given(case=strategy)
        def run(case: Any) -> None:
            call(case, session)

        run()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def schema(fuzz_target: FuzzTarget) -> Any:
    """The document as the gateway serves it."""
    return await asyncio.to_thread(
        schemathesis.openapi.from_url, f"{fuzz_target.base}/openapi.json", config=CONFIG
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=_ids(OPERATIONS))
async def test_operation_as_admin(
    schema: Any, fuzz_target: FuzzTarget, method: str, path: str
) -> None:
    operation = schema[path][method]
    platform = _is_platform(method, path)
    token = fuzz_target.admin_token if platform else fuzz_target.tenant.admin_key
    headers = {"Authorization": f"Bearer {token}"}
    tenant = {"tenant": fuzz_target.tenant.id} if "{tenant}" in path else {}
    fixed = {"headers": headers, "query": FIXED_QUERY.get(path, {})}
    strategy = _strategy(operation, path_parameters=tenant, **fixed)
    real = await fuzz_target.real_parameters(path)
    if real:
        real_strategy = _strategy(operation, path_parameters={**tenant, **real}, **fixed)
        strategy = real_strategy | strategy

    timeout = STREAM_READ_SECONDS if (method, path) in STREAMING else 10

    def call(case: Any, session: requests.Session) -> None:
        case.call_and_validate(
            base_url=fuzz_target.base,
            session=session,
            additional_checks=[problem_details],
            timeout=timeout,
        )

    await asyncio.to_thread(_fuzz, strategy, EXAMPLES, call)


@pytest.mark.parametrize(("method", "path"), SECURED, ids=_ids(SECURED))
async def test_operation_refuses_broken_credentials(
    schema: Any, fuzz_target: FuzzTarget, method: str, path: str
) -> None:
    operation = schema[path][method]
    strategy = st.one_of(
        [_strategy(operation, headers=credentials) for credentials in BROKEN_CREDENTIALS]
    )

    def call(case: Any, session: requests.Session) -> None:
        case.call_and_validate(
            base_url=fuzz_target.base,
            session=session,
            checks=[not_a_server_error, refused, problem_details],
            timeout=10,
        )

    await asyncio.to_thread(_fuzz, strategy, REFUSED_EXAMPLES, call)
