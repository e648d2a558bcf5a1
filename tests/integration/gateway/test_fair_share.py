"""Fair share (DESIGN section 13) at the gateway, on real NATS and PostgreSQL: a tenant's
``weight`` and ``max_running`` (platform admin PATCH)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto.registry import MAX_TENANT_RUNNING, MAX_TENANT_WEIGHT

from .conftest import ADMIN_TOKEN, Client, Http

pytestmark = pytest.mark.integration


async def test_weight_and_max_running_are_set_read_back_and_reset(
    http: Http, client: Client
) -> None:
    path = f"/api/v1/admin/tenants/{client.tenant.id}"

    async def patch(body: Any, token: str = ADMIN_TOKEN) -> tuple[int, Any]:
        status, answer, _ = await http.request("PATCH", path, token=token, json=body)
        return status, answer

    status, body = await patch({"weight": 5, "max_running": 2})
    assert (status, body["weight"], body["max_running"]) == (200, 5, 2)
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert (status, body["weight"], body["max_running"]) == (200, 5, 2)
    status, body = await patch({"weight": None})
    assert (status, body["weight"], body["max_running"]) == (200, None, 2)
    status, body = await patch({"max_running": None})
    assert (status, body["weight"], body["max_running"]) == (200, None, None)
    for field, bad in (
        ("weight", 0),
        ("weight", MAX_TENANT_WEIGHT + 1),
        ("weight", "2"),
        ("max_running", 0),
        ("max_running", MAX_TENANT_RUNNING + 1),
        ("max_running", 1.5),
    ):
        status, body = await patch({field: bad})
        assert (status, body["code"]) == (422, "VALIDATION_FAILED"), (field, bad)
        assert [item["path"] for item in body["errors"]] == [field], body
    for token in (client.tenant.admin_key, "wrong"):  # the platform admin's token only
        status, body = await patch({"weight": 9}, token)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert (body["weight"], body["max_running"]) == (None, None)
