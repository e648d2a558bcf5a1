"""The SSRF guard's address policy: which destinations an http step may connect to."""

from __future__ import annotations

import socket
from ipaddress import ip_address

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from flowmesh_executor.networks import parse_networks
from flowmesh_executor.nodes.base import StepError
from flowmesh_executor.nodes.http import check_destination
from flowmesh_executor.nodes.ssrf import (
    AddressNotAllowedError,
    PublicAddressResolver,
    address_allowed,
    literal_address,
)
from flowmesh_executor.settings import ENV_PREFIX, ExecutorSettings
from flowmesh_shared.settings import SettingsError, load_settings

REFUSED = [
    # IPv4
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata (link-local)
    "0.0.0.0",
    "0.1.2.3",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    # IPv6
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fec0::1",  # site-local
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    # IPv6 forms carrying a refused IPv4 address
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "172.32.0.1",  # just outside 172.16.0.0/12
    "100.128.0.1",  # just outside 100.64.0.0/10
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_allowed(ip_address(address)) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ip_address(address)) is True


def test_scoped_link_local_is_refused() -> None:
    assert address_allowed(ip_address("fe80::1%eth0")) is False


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_literal_address_parses_ip_hosts(host: str, expected: str) -> None:
    assert literal_address(host) == ip_address(expected)


@pytest.mark.parametrize("host", ["example.com", "localhost", "0x7f.0.0.1", "internal"])
def test_literal_address_leaves_names_to_the_resolver(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize("host", ["127.1", "2130706433", "017700000001", "1.2.3.4.5", "::1::"])
def test_literal_address_refuses_non_canonical_numeric_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="not a canonical IP address"):
        literal_address(host)


class FixedResolver(AbstractResolver):
    """Answers every name with the same addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_resolver_keeps_only_allowed_addresses() -> None:
    resolver = PublicAddressResolver(FixedResolver("10.0.0.1", "8.8.8.8", "::1", "1.1.1.1"))
    results = await resolver.resolve("mixed.example", 443)
    assert [r["host"] for r in results] == ["8.8.8.8", "1.1.1.1"]
    assert all(r["port"] == 443 for r in results)


async def test_resolver_refuses_a_name_with_only_private_addresses() -> None:
    resolver = PublicAddressResolver(FixedResolver("127.0.0.1", "::ffff:192.168.0.1"))
    with pytest.raises(AddressNotAllowedError, match=r"internal\.example") as caught:
        await resolver.resolve("internal.example", 80)
    assert isinstance(caught.value, OSError)
    assert caught.value.host == "internal.example"


async def test_resolver_refuses_unparsable_answers() -> None:
    resolver = PublicAddressResolver(FixedResolver("not-an-address"))
    with pytest.raises(AddressNotAllowedError):
        await resolver.resolve("odd.example", 80)


async def test_resolver_closes_the_resolver_it_wraps() -> None:
    inner = FixedResolver("8.8.8.8")
    await PublicAddressResolver(inner).close()
    assert inner.closed


# --- allowed networks (FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS; make dev: loopback) ---------

LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "8.8.8.8", "2606:4700::1"]
)
def test_loopback_allowed_reaches_loopback_and_public_addresses(address: str) -> None:
    assert address_allowed(ip_address(address), LOOPBACK)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "10.255.0.9",
        "169.254.169.254",  # cloud metadata
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_loopback_allowed_still_refuses_every_other_private_address(address: str) -> None:
    assert not address_allowed(ip_address(address), LOOPBACK)


async def test_the_resolver_keeps_addresses_of_allowed_networks() -> None:
    answers = FixedResolver("127.0.0.1", "10.0.0.1", "::1", "169.254.169.254")
    resolver = PublicAddressResolver(answers, LOOPBACK)
    assert [r["host"] for r in await resolver.resolve("localhost", 80)] == ["127.0.0.1", "::1"]
    with pytest.raises(AddressNotAllowedError):
        await PublicAddressResolver(FixedResolver("192.168.0.1"), LOOPBACK).resolve("nas", 80)


def test_a_literal_host_in_an_allowed_network_passes_the_step_check() -> None:
    settings = ExecutorSettings(http_allow_networks=("127.0.0.0/8", "::1/128"))
    check_destination(URL("http://127.0.0.1:8090/charges"), settings)
    check_destination(URL("http://[::1]:8090/charges"), settings)
    for refused in ("http://10.0.0.1/", "http://169.254.169.254/latest", "http://192.168.1.1/"):
        with pytest.raises(StepError) as caught:
            check_destination(URL(refused), settings)
        assert caught.value.error_class == "AddressNotAllowed"
        assert "FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS" in caught.value.message


def test_the_setting_reads_cidrs_and_refuses_what_is_no_network() -> None:
    env = {"FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS": "127.0.0.0/8, ::1/128"}
    settings = load_settings(ExecutorSettings, ENV_PREFIX, env)
    assert settings.http_allow_networks == ("127.0.0.0/8", "::1/128")
    assert load_settings(ExecutorSettings, ENV_PREFIX, {}).http_allow_networks == ()
    for bad in ("10.0.0.1/8", "localhost", "300.0.0.0/8"):
        env = {"FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS": bad}
        with pytest.raises(SettingsError, match="HTTP_ALLOW_NETWORKS"):
            load_settings(ExecutorSettings, ENV_PREFIX, env)
