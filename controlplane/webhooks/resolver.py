"""DNS for webhook targets, checked against the address rules at every connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver, ResolveResult

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


class GuardedResolver(AbstractResolver):
    """Resolves, refuses forbidden targets, and pins the connection to what it checked."""

    def __init__(self, resolve: Resolve, allow: AllowList) -> None:
        self._resolve = resolve
        self._allow = allow

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._resolve(host, port)
        check_addresses(host.rstrip(".").lower(), addresses, self._allow)  # raises TargetError
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        return [
            ResolveResult(hostname=host, host=str(a), port=port,
                          family=socket.AF_INET if a.version == 4 else socket.AF_INET6, proto=0,
                          flags=socket.AI_NUMERICHOST)
            for a in addresses if wanted is None or a.version == wanted
        ]

    async def close(self) -> None:
        return None
