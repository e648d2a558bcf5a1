"""Validate and update from a document's text: the registry reads it and places problems."""

from __future__ import annotations

import pytest
import yaml

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, simple_definition, unique

pytestmark = pytest.mark.integration

BROKEN = "name: {name}\nnodes:\n  - id: a\n    type: teleport\n"


async def test_validate_a_document(api: Api) -> None:
    good = yaml.safe_dump(simple_definition("v"))
    result = await api("workflow_validate", r.WorkflowValidate(document=good, format="yaml"))
    assert result.valid and result.errors == []
    result = await api(
        "workflow_validate", r.WorkflowValidate(document=BROKEN.format(name="v"), format="yaml")
    )
    [problem] = result.errors
    assert (problem.path, problem.line, problem.column) == ("nodes[0].type", 4, 11)
    result = await api("workflow_validate", r.WorkflowValidate(document='{"name": ', format="json"))
    [problem] = result.errors
    assert problem.code == "INVALID_EXPORT_FORMAT" and (problem.line, problem.column) == (1, 10)
    plain = await api("workflow_validate", r.WorkflowValidate(definition={"name": "v"}))
    assert all(problem.line is None for problem in plain.errors)


async def test_update_from_a_document(api: Api) -> None:
    wf = await api.create(unique("doc-update"))
    text = yaml.safe_dump(simple_definition(wf.name, description="typed"))
    request = r.WorkflowUpdate(id=wf.id, document=text, format="yaml", if_version=1)
    updated = await api("workflow_update", request)
    assert updated.version == 2 and updated.description == "typed"
    with pytest.raises(RemoteError) as caught:
        await api("workflow_update", request)
    assert caught.value.problem.code == "PRECONDITION_FAILED"
    broken = r.WorkflowUpdate(id=wf.id, document=BROKEN.format(name=wf.name), format="yaml")
    with pytest.raises(RemoteError) as caught:
        await api("workflow_update", broken)
    assert caught.value.problem.status == 422
    assert [(p.path, p.line) for p in caught.value.problem.errors] == [("nodes[0].type", 4)]
