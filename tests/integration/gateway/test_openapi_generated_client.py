"""The OpenAPI document works with a real generator: ``openapi-python-client`` generates a
client from services/gateway/openapi.json (every operation, no warning), which imports
and makes calls against the stack: a page of workflows, and a 404 read as a Problem."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO
from tests.integration.harness import TenantHandle

from .clientstack import Stack, greeting, stack, tenant, unique

pytestmark = pytest.mark.integration
__all__ = ["stack", "tenant"]

#: The YAML bodies (import, validate, PUT of a workflow) are raw bytes to the generator,
#: which has no model for YAML text; everything else is generated from the document as is.
CONFIG = "content_type_overrides:\n  application/yaml: application/octet-stream\n"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    folder = tmp_path_factory.mktemp("generated")
    (folder / "config.yaml").write_text(CONFIG)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(REPO / "services" / "gateway" / "openapi.json"),
            "--output-path",
            str(folder / "flowmesh_generated"),
            "--meta",
            "none",
            "--config",
            str(folder / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower() and "unsupported" not in said.lower(), said
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("flowmesh_generated")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n.startswith("flowmesh_generated")]:
            del sys.modules[name]


async def test_a_generated_client_calls_the_stack(
    generated: ModuleType, stack: Stack, tenant: TenantHandle
) -> None:
    from flowmesh_client import Client

    async with Client(stack.url, tenant.id, tenant.admin_key, env={}, cwd=Path("/")) as ours:
        made = await ours.workflows.create(greeting(unique("generated")))
    listing = importlib.import_module("flowmesh_generated.api.workflows.workflow_list")
    reading = importlib.import_module("flowmesh_generated.api.workflows.workflow_get")
    problem = importlib.import_module("flowmesh_generated.models.problem")
    client = generated.AuthenticatedClient(base_url=stack.url, token=tenant.admin_key)
    async with client:
        page = await listing.asyncio(tenant.id, client=client, limit=10)
        assert [w.id for w in page.items] == [made.id]
        assert page.items[0].name == made.name and page.has_more is False
        missing = await reading.asyncio_detailed(
            tenant.id, "7c1e0000-0000-4000-8000-000000000002", client=client
        )
    assert missing.status_code == 404
    assert isinstance(missing.parsed, problem.Problem)
    assert missing.parsed.code == "WORKFLOW_NOT_FOUND"
