"""Which URLs an endpoint may have, and which addresses we may deliver to. Pure.

The classification takes already-resolved addresses, so the same rules run at
creation (resolve, then check) and at delivery, where the resolver hands the
connector only the addresses it checked: a name that re-resolves to 127.0.0.1
between the two (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+))*\.?$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What ``webhooks.allow_loopback`` (development only) adds to the allow list.
LOOPBACK = ("127.0.0.0/8", "::1/128", "localhost")


class TargetError(ValueError):
    """The URL or the address it resolves to is not a deliverable target; the message says why."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None  # when the host is an address literal


@dataclass(frozen=True)
class AllowList:
    """``webhooks.allow_targets``: host names, addresses or CIDRs exempt from the address rules."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host in self.hosts or any(address in network for network in self.networks)


def parse_url(url: str, *, production: bool) -> Target:
    """Validate the shape of an endpoint URL; raises TargetError with a reason."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise TargetError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetError("must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise TargetError("must not carry credentials (user:password@)")
    if parts.fragment:
        raise TargetError("must not have a #fragment")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetError("must name a host")
    ip = _literal(host)
    if ip is None:
        if _NUMERIC_HOST.match(host):
            raise TargetError(f"host {host!r} is neither a name nor a dotted-quad address")
        if not all(_HOST_LABEL.match(label) for label in host.split(".")):
            raise TargetError(f"host {host!r} is not a valid host name")
    if scheme == "http":
        loopback = host == "localhost" or (ip is not None and _unmapped(ip).is_loopback)
        if production or not loopback:
            raise TargetError("must be an https:// URL (http:// only to loopback, in development mode)")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80), ip)


def forbidden_reason(address: IPAddress) -> str | None:
    """Why no mode may deliver to ``address`` unless it is allowed; None when it may."""
    address = _unmapped(address)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private or getattr(address, "is_site_local", False):
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def check_addresses(host: str, addresses: Sequence[IPAddress], allow: AllowList) -> None:
    """Refuse the target if any address it resolves to is forbidden and not allow-listed."""
    if not addresses:
        raise TargetError(f"{host} does not resolve to any address")
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None and not allow.allows(host, _unmapped(address)):
            raise TargetError(f"{host} resolves to {address}, which is {reason}")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside ::ffff:a.b.c.d, 6to4 or NAT64 forms, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address
