"""The Kamailio edge for e2e tests: its settings on a loopback address of its own, the runner
started with the configuration rendered from the database, and SIPp aimed at the edge."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from harness import free_media_port, free_port, free_udp_tcp_port, until_bound

from controlplane.asterisk.runner.kamailio import KamailioRunner, kamailio_dir, kamailio_moddir
from controlplane.asterisk.runner.rootfs import default_rootfs
from controlplane.nodes.edge import EdgeSettings, pg_target
from controlplane.nodes.edge_files import edge_files as render_edge_files

EDGE_IP = "127.0.0.3"  # the benches use 127.0.0.2; phones and carriers stay on 127.0.0.1


def edge_settings(instance: str, dsn: str, *, carrier_sources: tuple[str, ...] = ("127.0.0.1",)) -> EdgeSettings:
    return EdgeSettings(address=EDGE_IP, sip_port=free_udp_tcp_port(EDGE_IP), rpc_port=free_port(address=EDGE_IP),
                        database=pg_target(dsn), carrier_sources=carrier_sources,
                        work_dir=str(kamailio_dir(instance)))


async def edge_files(pool: asyncpg.Pool, edge: EdgeSettings) -> dict[str, str]:
    return await render_edge_files(pool, edge, kamailio_moddir(default_rootfs().resolve()))


@contextlib.contextmanager
def kamailio(instance: str, edge: EdgeSettings, files: dict[str, str]) -> Iterator[KamailioRunner]:
    runner = KamailioRunner(default_rootfs().resolve(), instance, edge.rpc_url)
    runner.write(files)
    runner.check()
    runner.up(files)
    try:
        yield runner
    finally:
        runner.down()
        shutil.rmtree(runner.instance_dir, ignore_errors=True)


def sipp_edge(edge: EdgeSettings, scenario: str, service: str, *, user: str | None = None,
              password: str | None = None, timeout: str = "20s", background: bool = False,
              port: int | None = None) -> subprocess.Popen[bytes] | subprocess.CompletedProcess[bytes]:
    """One SIPp call of ``scenario`` from 127.0.0.1 to the edge; exit code 0: completed."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-edge-"))
    path = workdir / "scenario.xml"
    path.write_text(scenario)
    port = port or free_port(socket.SOCK_DGRAM)
    args = ["sipp", "-sf", str(path), "-s", service, "-m", "1", "-i", "127.0.0.1",
            "-p", str(port), "-mp", str(free_media_port()),
            "-timeout", timeout, "-nostdin", "-trace_err", f"{edge.address}:{edge.sip_port}"]
    if user is not None:
        csv = workdir / "users.csv"
        csv.write_text(f"SEQUENTIAL\n{user};\n")
        args += ["-inf", str(csv), "-au", user, "-ap", password or ""]
    if background:
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc.workdir = workdir  # type: ignore[attr-defined]  # for sipp_failure
        return until_bound(proc, port)
    return subprocess.run(args, cwd=workdir, capture_output=True, timeout=120)


def sipp_uas(port: int, scenario: str, *, calls: int = 1, timeout: str = "60s") -> subprocess.Popen[bytes]:
    """A SIPp UAS on 127.0.0.1:``port`` (a phone's registered port, or the carrier)."""
    workdir = Path(tempfile.mkdtemp(prefix="sipp-uas-"))
    (workdir / "scenario.xml").write_text(scenario)
    proc = subprocess.Popen(["sipp", "-sf", "scenario.xml", "-m", str(calls), "-i", "127.0.0.1",
                             "-p", str(port), "-mp", str(free_media_port()),
                             "-timeout", timeout, "-nostdin", "-trace_err"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.workdir = workdir  # type: ignore[attr-defined]
    return until_bound(proc, port)


def dialog_call_scenario(auth: bool, hold_ms: int = 500) -> str:
    """``call_scenario`` as a phone behind a proxy plays it: the ACK of the 200 and the BYE go to
    the remote target ([next_url]) with the Record-Route set ([routes]), so the edge can follow
    the dialog to the node that took it."""
    from tenants_e2e import call_scenario

    text = call_scenario(auth=auth, hold_ms=hold_ms)
    first = 2 if auth else 1  # the CSeq of the INVITE that gets the 200
    for method, cseq in (("ACK", first), ("BYE", first + 1)):
        start = text.index(f"CSeq: {cseq} {method}\n")
        head = text.rindex(f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0", 0, start)
        end = text.index("]]></send>", start)
        block = text[head:end]
        block = block.replace(f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
                              f"{method} [next_url] SIP/2.0", 1)
        block = block.replace("Max-Forwards: 70\n", "[routes]\nMax-Forwards: 70\n", 1)
        # The 200's To tag, not SIPp's last seen one (the 401's, relayed by the edge's transaction).
        block = block.replace("[peer_tag_param]", ";tag=[$totag]", 1)
        text = text[:head] + block + text[end:]
    keep_tag = ('<recv response="200" rrs="true" timeout="10000"><action><ereg regexp="tag=([^;>]*)" '
                'search_in="hdr" header="To:" assign_to="whole,totag"/></action></recv>')
    text = text.replace('<recv response="200" rrs="true" timeout="10000"/>', keep_tag, 1)
    return text.replace("</scenario>", '  <Reference variables="whole"/>\n</scenario>', 1)
