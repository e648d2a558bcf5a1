"""``make dev`` (scripts/dev.py): the executor's SSRF guard stays on, loopback allowed."""

from __future__ import annotations

import importlib.util
import sys
from ipaddress import ip_address
from pathlib import Path
from types import ModuleType

from flowmesh_executor.networks import parse_networks
from flowmesh_executor.nodes.ssrf import address_allowed
from flowmesh_executor.settings import ENV_PREFIX, ExecutorSettings
from flowmesh_shared.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


dev = _dev()


def test_make_dev_keeps_the_guard_on_and_allows_loopback_only() -> None:
    guard = dev.ssrf_guard({})
    settings = load_settings(ExecutorSettings, ENV_PREFIX, guard)
    assert settings.http_allow_private is False
    allowed = parse_networks(settings.http_allow_networks)
    for address in ("127.0.0.1", "::1"):
        assert address_allowed(ip_address(address), allowed)
    for address in ("10.1.2.3", "169.254.169.254", "192.168.0.10", "172.20.0.1", "fd00::1"):
        assert not address_allowed(ip_address(address), allowed)
    line = dev.guard_line(guard)
    assert "SSRF guard on" in line and "127.0.0.0/8,::1/128" in line


def test_the_environment_may_widen_or_turn_off_the_guard() -> None:
    wider = dev.ssrf_guard({"FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS": "127.0.0.0/8,10.0.0.0/8"})
    assert "10.0.0.0/8" in dev.guard_line(wider)
    off = dev.ssrf_guard({"FLOWMESH_EXECUTOR_HTTP_ALLOW_PRIVATE": "true"})
    assert "OFF" in dev.guard_line(off)
