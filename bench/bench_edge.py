"""The Kamailio edge (issue 19, docs/scale.md "Topology"): routing cost, table sync, failover.

Run (root: the chrooted Kamailio): .venv/bin/python bench/bench_edge.py [--tenants 10000]
Kamailio from the project's runner with the project's configuration, an embedded PostgreSQL
holding ``--tenants`` placed tenants, and two stand-in nodes (a UDP socket each that answers
every SIP request 200 OK, and says which node it is). Figures:
- a REGISTER through the edge (prefix -> htable -> dispatcher -> node and back), p50, one at
  a time; baseline: the same request straight to the node, same run;
- the edge's table reload (``htable.reload`` of the tenant and DID tables over JSON-RPC) with
  that many tenants; a move seen by the edge: UPDATE + reload until the next REGISTER of the
  tenant reaches the new node;
- failover: node A's socket closed; time until a REGISTER of a node-A tenant is answered by
  node B (requests sent every 100 ms, as phones retrying would).
Targets: edge p50 <= 5 ms; reload of 10,000 tenants <= 1 s; failover <= 3 s (ping 1 s + reply
timeout 1 s + one request's retry).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import asyncpg  # noqa: E402
from verdict import Verdicts  # noqa: E402

from controlplane.asterisk.runner.kamailio import KamailioRunner, kamailio_dir, kamailio_moddir, rpc_call  # noqa: E402
from controlplane.asterisk.runner.rootfs import default_rootfs  # noqa: E402
from controlplane.db.database import create_database, migrate_dsn  # noqa: E402
from controlplane.db.embedded import EmbeddedPostgres  # noqa: E402
from controlplane.nodes import store  # noqa: E402
from controlplane.nodes.edge import EdgeSettings, Node, pg_target  # noqa: E402
from controlplane.nodes.kamailio_cfg import render_dispatcher_list, render_kamailio_cfg  # noqa: E402

VERDICTS = Verdicts("bench_edge")
EDGE_IP = "127.0.0.4"


def free_port(address: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class StandInNode(asyncio.DatagramProtocol):
    """Answers every SIP request 200 OK with ``X-Node: <name>``: enough for the edge's routing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if not head or head[0].startswith(b"SIP/2.0") or self.transport is None:
            return
        keep = [h for h in head[1:] if h.split(b":", 1)[0].strip().lower()
                in (b"via", b"from", b"to", b"call-id", b"cseq", b"record-route", b"path")]
        reply = b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"X-Node: " + self.name.encode(),
                              b"Content-Length: 0", b"", b""])
        self.transport.sendto(reply, addr)


class Phone(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for line in data.split(b"\r\n"):
            if line.lower().startswith(b"call-id:"):
                future = self.waiting.pop(line.split(b":", 1)[1].strip().decode(), None)
                if future is not None and not future.done():
                    future.set_result(data)

    async def register(self, user: str, target: tuple[str, int], timeout: float = 2.0) -> str | None:
        """The answering node's name, None on no answer."""
        assert self.transport is not None
        local = self.transport.get_extra_info("sockname")
        call_id = secrets.token_hex(8)
        request = (f"REGISTER sip:{target[0]}:{target[1]} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                   f"From: <sip:{user}@{target[0]}>;tag={secrets.token_hex(4)}\r\nTo: <sip:{user}@{target[0]}>\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{local[0]}:{local[1]}>\r\n"
                   "Max-Forwards: 70\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n").encode()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[call_id] = future
        self.transport.sendto(request, target)
        try:
            answer = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self.waiting.pop(call_id, None)
            return None
        for line in answer.split(b"\r\n"):
            if line.lower().startswith(b"x-node:"):
                return line.split(b":", 1)[1].strip().decode()
        return "?" if answer.startswith(b"SIP/2.0 2") else None


async def seed(dsn: str, tenants: int, nodes: list[Node]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for node in nodes:
            await store.upsert_node(conn, node)
        await conn.execute("INSERT INTO partners (id, name, tier) VALUES ('ptr_bench', 'Bench', 'BUSINESS')")
        ids = [f"ten_{i:06d}" for i in range(tenants)]
        await conn.copy_records_to_table("tenants", columns=["id", "partner_id", "name", "sip_prefix",
                                                              "billing_email", "status"],
                                         records=[(t, "ptr_bench", t, f"t{i:06d}", "b@x.co", "ACTIVE")
                                                  for i, t in enumerate(ids)])
        await conn.executemany("INSERT INTO tenant_nodes (tenant_id, node_id) VALUES ($1, $2)",
                               [(t, nodes[i % 2].id) for i, t in enumerate(ids)])
    finally:
        await conn.close()


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg")
        postgres.start()
        try:
            await create_database(postgres.dsn(), "bench")
            dsn = postgres.dsn("bench")
            await migrate_dsn(dsn)
            ports = {n: free_port("127.0.0.1", socket.SOCK_DGRAM) for n in ("a", "b")}
            nodes = [Node("node-a", 1, "127.0.0.1", ports["a"]), Node("node-b", 2, "127.0.0.1", ports["b"])]
            await seed(dsn, args.tenants, nodes)
            standins: dict[str, asyncio.DatagramTransport] = {}
            for name in ("a", "b"):
                node = StandInNode(f"node-{name}")
                transport, _ = await loop.create_datagram_endpoint(lambda: node,
                                                                   local_addr=("127.0.0.1", ports[name]))
                standins[name] = transport
            instance = f"bench{os.getpid()}"
            edge = EdgeSettings(address=EDGE_IP, sip_port=free_port(EDGE_IP, socket.SOCK_DGRAM),
                                rpc_port=free_port(EDGE_IP, socket.SOCK_STREAM), database=pg_target(dsn),
                                work_dir=str(kamailio_dir(instance)))
            rootfs = default_rootfs().resolve()
            runner = KamailioRunner(rootfs, instance, edge.rpc_url)
            runner.up({"kamailio.cfg": render_kamailio_cfg(edge, kamailio_moddir(rootfs)),
                       "dispatcher.list": render_dispatcher_list(nodes)})
            try:
                await measure(args, edge, dsn, ports, standins)
            finally:
                runner.down()
                import shutil
                shutil.rmtree(runner.instance_dir, ignore_errors=True)
                for transport in standins.values():
                    transport.close()
        finally:
            postgres.stop()


async def measure(args: argparse.Namespace, edge: EdgeSettings, dsn: str, ports: dict[str, int],
                  standins: dict[str, asyncio.DatagramTransport]) -> None:
    loop = asyncio.get_running_loop()
    _, phone = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    target = (edge.address, edge.sip_port)
    assert await phone.register("t000000_101", target) == "node-a", "the edge did not route to node A"
    via_edge, direct = [], []
    for i in range(args.requests):
        user = f"t{(i * 2) % args.tenants:06d}_101"
        started = time.perf_counter()
        assert await phone.register(user, target) == "node-a"
        via_edge.append(time.perf_counter() - started)
        started = time.perf_counter()
        await phone.register(user, ("127.0.0.1", ports["a"]))
        direct.append(time.perf_counter() - started)
    VERDICTS.at_most("REGISTER through the edge, p50", median_ms(via_edge), 5.0, "ms")
    VERDICTS.info("the same straight to the node (baseline), p50", median_ms(direct), "ms")
    VERDICTS.info("edge / baseline", median_ms(via_edge) / max(median_ms(direct), 1e-6), "x")

    reloads = []
    for _ in range(5):
        started = time.perf_counter()
        for table in ("tenant", "did"):
            await asyncio.to_thread(rpc_call, edge.rpc_url, "htable.reload", [table])
        reloads.append(time.perf_counter() - started)
    VERDICTS.at_most(f"edge table reload, {args.tenants} tenants, p50", median_ms(reloads), 1000.0, "ms")

    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute("UPDATE tenant_nodes SET node_id = 'node-b' WHERE tenant_id = 'ten_000000'")
        for table in ("tenant", "did"):
            await asyncio.to_thread(rpc_call, edge.rpc_url, "htable.reload", [table])
        answered = await phone.register("t000000_101", target)
        moved = time.perf_counter() - started
    finally:
        await conn.close()
    assert answered == "node-b", answered
    VERDICTS.info("a move seen by the edge (UPDATE + reload + next REGISTER)", moved * 1000, "ms")

    standins["a"].close()  # node A dies: nothing answers on its port any more
    killed = time.monotonic()
    answered_by = None
    while time.monotonic() - killed < 15:
        answered_by = await phone.register("t000002_101", target, timeout=0.5)  # a node-A tenant
        if answered_by == "node-b":
            break
        await asyncio.sleep(0.1)
    if answered_by != "node-b":
        VERDICTS.broken("failover", "node A's tenants never reached node B")
        return
    VERDICTS.at_most("failover: node A dead -> its tenant answered by node B", time.monotonic() - killed,
                     3.0, "s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0:
        VERDICTS.skipped("edge", "needs root (the chrooted Kamailio)")
        return VERDICTS.finish()
    asyncio.run(run(args))
    return VERDICTS.finish()


if __name__ == "__main__":
    sys.exit(main())
