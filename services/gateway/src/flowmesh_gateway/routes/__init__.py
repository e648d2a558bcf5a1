"""The API's endpoints, one module per resource; :data:`ROUTES` lists them all."""

from __future__ import annotations

from flowmesh_gateway.api import Route
from flowmesh_gateway.routes import (
    actions,
    admin,
    catalog,
    connectors,
    console,
    events,
    history,
    keys,
    runs,
    secrets,
    streams,
    webhooks,
    workflows,
)

ROUTES: list[Route] = [
    *workflows.ROUTES,
    *runs.ROUTES,
    *history.ROUTES,
    *streams.ROUTES,
    *events.ROUTES,
    *webhooks.ROUTES,
    *keys.ROUTES,
    *secrets.ROUTES,
    *catalog.ROUTES,
    *connectors.ROUTES,
    *actions.ROUTES,
    *admin.ROUTES,
    *console.ROUTES,
]
