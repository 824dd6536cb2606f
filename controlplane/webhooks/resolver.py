"""DNS for webhook targets, checked against the address rules at every connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from controlplane.webhooks.targets import AllowList, IPAddress, check_addresses

Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (deduplicated, resolver order)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def guarded(resolve: Resolve, allow: AllowList) -> Resolve:
    """``resolve``, refusing a name any of whose addresses is forbidden (TargetError): the
    connection then goes only to the addresses checked, so a second lookup cannot rebind it."""

    async def checked(host: str, port: int) -> list[IPAddress]:
        addresses = await resolve(host, port)
        check_addresses(host.rstrip(".").lower(), addresses, allow)
        return addresses

    return checked
