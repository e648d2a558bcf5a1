"""make dev's local PostgreSQL runs as another user through ``runuser``: found where a
user's PATH may leave it out, and named when it is missing (not taken for a permission
problem)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmesh_devtools import localstack
from flowmesh_devtools.localstack import LocalStackError


@pytest.mark.skipif(not Path("/usr/sbin/runuser").exists(), reason="no /usr/sbin/runuser here")
def test_runuser_is_found_in_sbin_when_path_leaves_it_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    assert localstack.runuser() in ("/usr/sbin/runuser", "/sbin/runuser")


def test_a_missing_runuser_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localstack.shutil, "which", lambda *_, **__: None)
    with pytest.raises(LocalStackError, match=r"runuser \(util-linux\) was not found"):
        localstack.runuser()


async def test_the_reachability_check_says_runuser_is_missing_not_permissions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(localstack.shutil, "which", lambda *_, **__: None)
    with pytest.raises(LocalStackError) as caught:
        await localstack._check_reachable(tmp_path, "postgres")
    assert "runuser" in str(caught.value) and "not writable" not in str(caught.value)
