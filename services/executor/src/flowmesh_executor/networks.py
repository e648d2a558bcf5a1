"""IP networks as the executor's settings name them (``http_allow_networks``): parsed here,
checked against by the SSRF guard (:mod:`flowmesh_executor.nodes.ssrf`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The networks of ``http_allow_networks`` (``127.0.0.0/8``, ``::1/128``; an address
    alone is one host); ValueError names one that is not a network (``10.0.0.1/8``)."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network (CIDR): {exc}") from None
    return tuple(networks)
