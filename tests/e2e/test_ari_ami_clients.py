"""AriClient and AmiClient against a real Asterisk 22 in the cached root filesystem:
events for a real SIPp call, REST helpers, and reconnection after Asterisk is killed.

The instance is private to this module (own directory under <rootfs>/srv, free
ports), so it runs beside a developer's Asterisk or another test run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from controlplane.asterisk import events as ev
from controlplane.asterisk.ami import AmiActionError, AmiClient
from controlplane.asterisk.ari import AriClient, AriError

pytestmark = [pytest.mark.e2e]

ROOTFS = Path(os.environ.get("CONTROLPLANE_ASTERISK_ROOTFS")
              or Path.home() / ".cache/controlplane/asterisk-rootfs")
APP, USER, SECRET = "cptest", "cptest", secrets.token_hex(8)
MODULES = [
    "res_timing_timerfd", "codec_ulaw", "codec_alaw", "format_wav", "format_pcm",
    "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_pjproject",
    "res_rtp_asterisk", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub", "res_pjsip_sdp_rtp",
    "res_pjsip_endpoint_identifier_ip", "res_pjsip_caller_id", "chan_pjsip", "bridge_simple",
    "res_http_websocket", "res_websocket_client", "res_stasis", "res_stasis_answer",
    "res_stasis_playback", "res_stasis_recording", "res_stasis_snoop", "res_ari", "res_ari_model",
    "res_ari_asterisk", "res_ari_channels", "res_ari_bridges", "res_ari_events",
    "res_ari_applications", "res_ari_endpoints", "app_stasis", "app_dial", "pbx_config",
    "cdr_manager", "cel_manager"
]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScratchAsterisk:
    """A minimal instance: ARI, AMI, PJSIP (SIPp endpoint), a Stasis context."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs, self.name = rootfs, f"e2e-ari-ami-{secrets.token_hex(4)}"
        self.dir = rootfs / "srv" / self.name
        self.http_port, self.ami_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.conf = f"/srv/{self.name}/etc/asterisk.conf"

    def write_config(self) -> None:
        inner = f"/srv/{self.name}"
        files = {
            "asterisk.conf": f"[directories]\nastetcdir => {inner}/etc\nastrundir => {inner}/run\n"
                             f"astlogdir => {inner}/log\nastspooldir => {inner}/spool\n"
                             f"astdbdir => {inner}/db\nastvarlibdir => /var/lib/asterisk\n"
                             "astdatadir => /usr/share/asterisk\n[options]\nhideconnect = yes\n",
            "modules.conf": "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES),
            "logger.conf": "[logfiles]\nmessages.log => notice,warning,error\n",
            "http.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {self.http_port}\n",
            "ari.conf": f"[general]\nenabled = yes\n[{USER}]\ntype = user\nread_only = no\n"
                        f"password = {SECRET}\npassword_format = plain\n",
            "manager.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nport = {self.ami_port}\n"
                            f"[{USER}]\nsecret = {SECRET}\nread = all\nwrite = all\n",
            "pjsip.conf": f"[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{self.sip_port}\n"
                          "[sipp]\ntype = endpoint\ncontext = from-sipp\ndisallow = all\nallow = ulaw\n"
                          "[sipp]\ntype = identify\nendpoint = sipp\nmatch = 127.0.0.1\n",
            # Push configuration (ARI /asterisk/config/dynamic) needs a writable backend.
            "sorcery.conf": "[res_pjsip]\nendpoint = config,pjsip.conf,criteria=type=endpoint\n"
                            "endpoint = astdb,ps_endpoints\n",
            "extensions.conf": "[from-sipp]\n"
                               f"exten => _X.,1,Answer()\n same => n,Stasis({APP},inbound)\n"
                               " same => n,Hangup()\n"
                               "exten => continued,1,Set(CP_CONTINUED=yes)\n same => n,Wait(5)\n"
                               "exten => hold,1,Answer()\n same => n,Wait(30)\n",
            "cdr.conf": "[general]\nenable = yes\n",
            "cdr_manager.conf": "[general]\nenabled = yes\n",
            "cel.conf": "[general]\nenable = yes\napps = all\nevents = ALL\n[manager]\nenabled = yes\n",
        }
        for sub in ("etc", "run", "log", "spool", "db"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (self.dir / "etc" / name).write_text(text)

    def cli(self, command: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-C", self.conf,
                               "-rx", command], check=False, capture_output=True, text=True,
                              timeout=timeout)

    def start(self) -> None:
        subprocess.run(["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-C", self.conf],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.cli("core waitfullybooted").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"asterisk did not boot; see {self.dir}/log/messages.log")

    def pid(self) -> int | None:
        try:
            pid = int((self.dir / "run/asterisk.pid").read_text())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if state != "Z" and self.conf.encode() in cmdline else None

    def kill(self) -> None:
        """SIGKILL: no Shutdown event, no clean close - the worst case for clients."""
        pid = self.pid()
        assert pid is not None, "asterisk is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.pid() is not None:
            self.cli("core stop now")
            deadline = time.monotonic() + 10
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        if (pid := self.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def asterisk() -> Iterator[ScratchAsterisk]:
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot)")
    if not (ROOTFS / "usr/sbin/asterisk").exists():
        pytest.skip(f"no Asterisk root filesystem at {ROOTFS} (asterisk/build-rootfs.sh)")
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed (Debian package sip-tester)")
    instance = ScratchAsterisk(ROOTFS)
    instance.write_config()
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(instance.dir, ignore_errors=True)


class Recorder:
    """Collects events from both clients; tests wait on predicates over them."""

    def __init__(self) -> None:
        self.ari: list[ev.AriEvent] = []
        self.ami: list[ev.AmiEvent] = []
        self.reconnects = {"ari": 0, "ami": 0}
        self._changed = asyncio.Event()

    async def on_ari(self, event: ev.AriEvent) -> None:
        self.ari.append(event)
        self._changed.set()

    def on_ami(self, event: ev.AmiEvent) -> None:
        self.ami.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout)


async def place_call(asterisk: ScratchAsterisk, tmp: Path, exten: str = "100") -> None:
    """One SIPp UAC call; SIPp hangs up after one second."""
    proc = await asyncio.create_subprocess_exec(
        "sipp", "-sn", "uac", "-s", exten, "-m", "1", "-d", "1000", "-i", "127.0.0.1",
        "-p", str(free_port(socket.SOCK_DGRAM)), "-timeout", "20s", "-nostdin",
        f"127.0.0.1:{asterisk.sip_port}", cwd=tmp,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


class Clients:
    def __init__(self, asterisk: ScratchAsterisk, rec: Recorder,
                 handler: Callable[[ev.AriEvent], object] | None = None) -> None:
        async def ari_reconnected() -> None:
            rec.reconnects["ari"] += 1

        async def ami_reconnected() -> None:
            rec.reconnects["ami"] += 1

        self.ari = AriClient(f"http://127.0.0.1:{asterisk.http_port}", USER, SECRET, APP,
                             on_reconnect=ari_reconnected)
        self.ami = AmiClient("127.0.0.1", asterisk.ami_port, USER, SECRET,
                             on_reconnect=ami_reconnected, ping_interval=2.0)
        self.ami.on("*", rec.on_ami)
        self._handler = handler or rec.on_ari
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.ari.run(self._handler))  # type: ignore[arg-type]
        await self.ami.connect(timeout=10)
        await self.ari.wait_connected(timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ami.close()
        await self.ari.close()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)


def of(events: list, cls: type, **match: object) -> list:
    return [e for e in events if isinstance(e, cls)
            and all(getattr(e, k, None) == v for k, v in match.items())]


async def test_call_events_reach_ari_and_ami(asterisk: ScratchAsterisk, tmp_path: Path) -> None:
    rec = Recorder()
    clients: Clients

    async def handler(event: ev.AriEvent) -> None:
        if isinstance(event, ev.StasisStart):  # exercise REST from inside the stream
            await clients.ari.set_channel_var(event.channel.id, "CP_TEST", "42")
            await clients.ari.continue_in_dialplan(event.channel.id, "from-sipp", "continued", 1)
        await rec.on_ari(event)

    async with Clients(asterisk, rec, handler) as clients:
        await place_call(asterisk, tmp_path)
        await rec.wait_for(lambda: of(rec.ari, ev.ChannelDestroyed))
        start = of(rec.ari, ev.StasisStart)[0]
        cid = start.channel.id
        await rec.wait_for(lambda: of(rec.ami, ev.Hangup, uniqueid=cid) and of(rec.ami, ev.Cdr))

    assert start.args == ["inbound"] and start.channel.caller.number == "sipp"
    kinds = [type(e).__name__ for e in rec.ari if getattr(e, "channel", None) is not None
             and e.channel.id == cid]  # type: ignore[attr-defined]
    for earlier, later in [("ChannelCreated", "StasisStart"), ("StasisStart", "StasisEnd"),
                           ("StasisEnd", "ChannelDestroyed")]:
        assert kinds.index(earlier) < kinds.index(later), kinds
    assert of(rec.ari, ev.ChannelVarset, variable="CP_TEST", value="42")
    assert of(rec.ari, ev.ChannelVarset, variable="CP_CONTINUED", value="yes")
    assert of(rec.ari, ev.ChannelStateChange) and of(rec.ari, ev.ChannelDialplan)
    # AMI sees the same call under the same id (ARI channel id == AMI Uniqueid).
    assert of(rec.ami, ev.Newchannel, uniqueid=cid)
    assert of(rec.ami, ev.VarSet, uniqueid=cid, variable="CP_CONTINUED")
    assert of(rec.ami, ev.Cdr, unique_id=cid)
    assert of(rec.ami, ev.Hangup, uniqueid=cid)[0].channel.startswith("PJSIP/sipp-")


async def test_rest_helpers(asterisk: ScratchAsterisk) -> None:
    rec = Recorder()
    async with Clients(asterisk, rec) as clients:
        ari, ami = clients.ari, clients.ami
        info = await ari.asterisk_info()
        assert info["system"]["version"].startswith("22.")
        with pytest.raises(AriError) as err:
            await ari.hangup("no-such-channel")
        assert err.value.status == 404 and "not found" in str(err.value).lower()

        chan = await ari.originate("Local/hold@from-sipp", app=APP, app_args="out",
                                   variables={"CP_ORIGIN": "test"})
        await rec.wait_for(lambda: of(rec.ari, ev.StasisStart))
        assert chan.id in {c.id for c in await ari.channels()}
        assert await ari.get_channel_var(chan.id, "CP_ORIGIN") == "test"
        await ari.hangup(chan.id, reason="normal")
        await rec.wait_for(lambda: [e for e in of(rec.ari, ev.ChannelDestroyed)
                                    if e.channel.id == chan.id])

        fields = [("context", "from-sipp"), ("allow", "ulaw")]
        stored = dict(await ari.config_put("res_pjsip", "endpoint", "cp-e2e-1", fields))
        assert stored["context"] == "from-sipp"
        assert dict(await ari.config_get("res_pjsip", "endpoint", "cp-e2e-1"))["context"] == "from-sipp"
        await ari.config_delete("res_pjsip", "endpoint", "cp-e2e-1")
        with pytest.raises(AriError):
            await ari.config_get("res_pjsip", "endpoint", "cp-e2e-1")

        assert await ami.ping() and ami.fully_booted
        listing = await ami.action({"Action": "CoreShowChannels"})
        assert isinstance(listing, list) and listing[-1]["Event"] == "CoreShowChannelsComplete"
        with pytest.raises(AmiActionError):
            await ami.action({"Action": "NoSuchAction"})


async def test_clients_reconnect_after_asterisk_is_killed(asterisk: ScratchAsterisk,
                                                          tmp_path: Path) -> None:
    rec = Recorder()
    async with Clients(asterisk, rec) as clients:
        ari, ami = clients.ari, clients.ami
        await asyncio.to_thread(asterisk.kill)
        deadline = time.monotonic() + 10
        while (ari.connected or ami.connected) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not ari.connected and not ami.connected

        await asyncio.to_thread(asterisk.start)
        booted = time.monotonic()
        await ari.wait_connected(timeout=15)
        await ami.wait_connected(timeout=15)
        await rec.wait_for(lambda: rec.reconnects == {"ari": 1, "ami": 1}, timeout=15)
        assert time.monotonic() - booted < 15

        rec.ari.clear()
        rec.ami.clear()
        await place_call(asterisk, tmp_path)
        await rec.wait_for(lambda: of(rec.ari, ev.StasisEnd) and of(rec.ami, ev.Hangup))
        cid = of(rec.ari, ev.StasisStart)[0].channel.id
        assert of(rec.ami, ev.Newchannel, uniqueid=cid)
