"""The edge's data, validated: nodes, and what Kamailio needs besides them (pure).

Everything here ends up in ``kamailio.cfg`` or its dispatcher list, so every value is
checked against a strict shape: node ids ``[a-z][a-z0-9-]*``, IPv4 literals, ports,
dispatcher set numbers. A value that does not fit raises ``EdgeInvalid`` naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from provisioning.realtime_conf import PgTarget
from provisioning.validate import Invalid

NODE_ID = re.compile(r"[a-z][a-z0-9-]{0,31}")
_URL = re.compile(r"https?://[A-Za-z0-9.:\-\[\]]+(/[A-Za-z0-9._/\-]*)?")
MAX_SET = 999


class EdgeInvalid(ValueError):
    """A value that cannot go into Kamailio's configuration; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_node_id(value: str, field: str = "node_id") -> str:
    if not isinstance(value, str) or not NODE_ID.fullmatch(value):
        raise EdgeInvalid(field, "lower-case letters, digits and '-', starting with a letter, at most 32")
    return value


def check_ipv4(value: str, field: str) -> str:
    """An IPv4 literal written back in its canonical form (no names: no DNS at the edge)."""
    try:
        address = ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise EdgeInvalid(field, "an IPv4 address like 10.0.0.5") from None
    return str(address)


def check_port(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise EdgeInvalid(field, "a port between 1 and 65535")
    return value


def check_set(value: int, field: str = "set_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SET:
        raise EdgeInvalid(field, f"a dispatcher set between 1 and {MAX_SET}")
    return value


def check_url(value: str | None, field: str = "daemon_url") -> str | None:
    if value is not None and (not isinstance(value, str) or not _URL.fullmatch(value)):
        raise EdgeInvalid(field, "an http(s) URL of the node's daemon")
    return value


@dataclass(frozen=True, slots=True)
class Node:
    """An Asterisk node with its daemon; ``set_id`` is its Kamailio dispatcher set."""

    id: str
    set_id: int
    sip_host: str
    sip_port: int
    daemon_url: str | None = None
    accepting: bool = True

    def __post_init__(self) -> None:
        check_node_id(self.id, "id")
        check_set(self.set_id)
        object.__setattr__(self, "sip_host", check_ipv4(self.sip_host, "sip_host"))
        check_port(self.sip_port, "sip_port")
        check_url(self.daemon_url)

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.sip_host}:{self.sip_port}"


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """Where Kamailio listens and what it trusts; the database it loads its tables from.

    ``carrier_sources``: addresses whose calls to a DID are routed by the DID's tenant (phones
    are routed by their user's prefix wherever they come from). ``rpc_port``: JSON-RPC over
    HTTP on ``address`` (reload of the tables, dispatcher state), loopback or a private
    address only: it is not authenticated.
    """

    address: str
    sip_port: int
    rpc_port: int
    database: PgTarget
    carrier_sources: tuple[str, ...] = ()
    work_dir: str = "/srv/controlplane/kamailio"
    # Probing: an OPTIONS every ping_interval s; a node that missed `threshold` answers (each
    # waited for at most `reply_timeout_ms`) is down, its tenants go to the next node.
    ping_interval: int = 1
    threshold: int = 1
    reply_timeout_ms: int = 1000
    # A call's INVITE waits this long for the node's first reply before it is retried on the
    # next node. Longer than the probe's: a node busy with a burst of calls answers a probe
    # late but is alive, and a call moved off it would ring on two nodes (its late answer on
    # the first is dropped, and the phone's credentials are the first node's).
    invite_timeout_ms: int = 4000
    children: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", check_ipv4(self.address, "edge.address"))
        check_port(self.sip_port, "edge.sip_port")
        check_port(self.rpc_port, "edge.rpc_port")
        if self.rpc_port == self.sip_port:
            raise EdgeInvalid("edge.rpc_port", "must differ from the SIP port")
        object.__setattr__(self, "carrier_sources", tuple(
            check_ipv4(a, f"edge.carrier_sources[{i}]") for i, a in enumerate(self.carrier_sources)))
        if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", self.work_dir):
            raise EdgeInvalid("edge.work_dir", "an absolute path of letters, digits and . _ -")
        for name, low, high in (("ping_interval", 1, 60), ("threshold", 1, 10),
                                ("reply_timeout_ms", 200, 30000), ("invite_timeout_ms", 200, 30000),
                                ("children", 1, 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise EdgeInvalid(f"edge.{name}", f"an integer between {low} and {high}")

    @property
    def rpc_url(self) -> str:
        return f"http://{self.address}:{self.rpc_port}/RPC"

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.address}:{self.sip_port}"


def pg_target(dsn: str) -> PgTarget:
    """The database Kamailio loads from, with the same character rules as Asterisk's."""
    try:
        return PgTarget.from_dsn(dsn)
    except Invalid as exc:
        raise EdgeInvalid("database.dsn", str(exc)) from None


def failover_order(nodes: tuple[Node, ...] | list[Node], home: Node) -> list[Node]:
    """The node itself first, then the others by set number: where its tenants go when it is down.

    Deterministic, so every edge (and the documentation) agrees on the survivor."""
    others = sorted((n for n in nodes if n.id != home.id), key=lambda n: n.set_id)
    return [home, *others]


def stable_node(tenant_id: str, nodes: list[Node]) -> Node:
    """The default home of a tenant not yet pinned: a stable hash over the accepting nodes.

    FNV-1a over the id (not Python's salted ``hash``), so every daemon picks the same node;
    the pick is then stored, so adding a node later never moves an existing tenant."""
    pool = sorted((n for n in nodes if n.accepting), key=lambda n: n.set_id) or sorted(
        nodes, key=lambda n: n.set_id)
    if not pool:
        raise EdgeInvalid("nodes", "no node is registered")
    digest = 0xCBF29CE484222325
    for byte in tenant_id.encode():
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return pool[digest % len(pool)]
