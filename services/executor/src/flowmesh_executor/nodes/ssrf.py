"""The SSRF guard of ``http`` steps: which addresses a step may connect to.

Unless the deployment allows private destinations (``http_allow_private``), a step may only
reach public unicast addresses, and the networks the deployment names in
``http_allow_networks`` (``make dev``: loopback only, ``127.0.0.0/8,::1/128``; every other
private, link-local or metadata address stays refused). The check happens where the address
is chosen, so DNS rebinding cannot defeat it:

- a host name goes through :class:`PublicAddressResolver`, the resolver of the session's
  connector: it resolves the name and keeps only the allowed addresses, so the address the
  connector connects to is one that was checked (no second lookup in between);
- an IP-literal host never reaches a resolver (aiohttp connects to it directly), so the step
  checks it with :func:`literal_address` and :func:`address_allowed` before the request.

:func:`address_allowed` and :func:`literal_address` are pure and carry the whole policy.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp.abc import AbstractResolver, ResolveResult

from flowmesh_executor.networks import IPAddress, IPNetwork, parse_networks

#: The well-known NAT64 prefix: a translator connects to the IPv4 address in the low bits.
_NAT64 = IPv6Network("64:ff9b::/96")
#: Shared address space (carrier-grade NAT): not private in ``ipaddress``, not public either.
_SHARED = IPv4Network("100.64.0.0/10")


@lru_cache(maxsize=8)
def allowed_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """:func:`parse_networks`, once per setting value."""
    return parse_networks(values)


def address_allowed(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    """Whether a step may connect to ``address`` when private destinations are not allowed.

    Allowed: public unicast addresses, and those inside one of the ``allowed`` networks.
    Refused: private, loopback, link-local, multicast, reserved, unspecified and shared
    (100.64.0.0/10) addresses, IPv6 site-local ones, and the IPv6 forms that carry such an
    IPv4 address (IPv4-mapped, NAT64, 6to4). Teredo addresses are refused outright.
    """
    if any(address.version == net.version and address in net for net in allowed):
        return True
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_allowed(embedded, allowed)
        if address.teredo is not None or address.is_site_local:
            return False
    refused = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    return address.is_global and not refused and address not in _SHARED


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address traffic to ``address`` really goes to, if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def literal_address(host: str) -> IPAddress | None:
    """The address an URL host names directly, or None for a name to resolve.

    Raises ValueError for a host that looks numeric but is no canonical address (``127.1``,
    ``2130706433``, ``::1::``): the socket layer may map such forms onto an address without
    asking any resolver, so they are refused rather than guessed at.
    """
    candidate = host.removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        if ":" in candidate or candidate.replace(".", "").isdigit():
            raise ValueError(f"{host} is not a canonical IP address") from None
        return None


class AddressNotAllowedError(OSError):
    """Every address a host name resolves to is refused by the SSRF guard."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to a private address")
        self.host = host


class PublicAddressResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses :func:`address_allowed` allows.

    Raises :class:`AddressNotAllowedError` (an OSError: the connector wraps it in a
    ``ClientConnectorDNSError`` whose ``os_error`` it is) when none is left.
    """

    def __init__(self, inner: AbstractResolver, allowed: Sequence[IPNetwork] = ()) -> None:
        self._inner = inner
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if _result_allowed(result, self._allowed)]
        if not allowed:
            raise AddressNotAllowedError(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _result_allowed(result: ResolveResult, allowed: Sequence[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(result["host"])
    except ValueError:
        return False
    return address_allowed(address, allowed)
