"""AriClient and AmiClient against a real Asterisk 22 from the project's runner and
base config (tests/e2e/harness.py): events for a real SIPp call, REST helpers, and
reconnection after Asterisk is killed.

The instance is private to this module (own instance directory, free ports), so it
runs beside a developer's Asterisk or another test run. Test-only objects go
through the runner's seams: SIPp as an endpoint in ``pjsip_extra.conf``, the
``from-sipp`` context in ``extensions_extra.conf``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
from harness import asterisk_instance, credentials, make_config, sipp_call, sipp_endpoint

from controlplane.asterisk import events as ev
from controlplane.asterisk.ami import AmiActionError, AmiClient
from controlplane.asterisk.ari import AriClient, AriError
from controlplane.asterisk.runner import AsteriskRunner
from controlplane.config import Config

pytestmark = [pytest.mark.e2e]

# Calls from SIPp go to the ARI application; `continued` and `hold` are targets
# for continue_in_dialplan and Local/ originates.
FROM_SIPP = """\
[from-sipp]
exten => _X.,1,Answer()
 same => n,Stasis({{app}},inbound)
 same => n,Hangup()
exten => continued,1,Set(CP_CONTINUED=yes)
 same => n,Wait(5)
exten => hold,1,Answer()
 same => n,Wait(30)
"""
# Push configuration (ARI /asterisk/config/dynamic) needs a writable sorcery backend.
PUSH_SORCERY = ("[res_pjsip]\nendpoint = config,pjsip.conf,criteria=type=endpoint\n"
                "endpoint = astdb,ps_endpoints\n")


@dataclass
class Instance:
    """The running instance and what the clients need to reach it."""

    runner: AsteriskRunner
    config: Config

    @property
    def app(self) -> str:
        return self.config.asterisk.app

    def kill(self) -> None:
        """SIGKILL: no Shutdown event, no clean close - the worst case for clients."""
        assert self.runner.status().running, "asterisk is not running"
        self.runner.kill()

    def start(self) -> None:
        self.runner.up()


@pytest.fixture(scope="module")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    config = make_config(tmp_path_factory.mktemp("ari-ami"), instance=f"e2e-ari-ami-{os.getpid()}")
    extra = {"pjsip_extra.conf": sipp_endpoint("from-sipp"), "extensions_extra.conf": FROM_SIPP,
             "sorcery.conf": PUSH_SORCERY}
    with asterisk_instance(config, extra) as runner:
        yield Instance(runner, config)


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


async def place_call(asterisk: Instance, tmp: Path, exten: str = "100") -> None:
    """One SIPp UAC call; SIPp hangs up after one second."""
    await sipp_call(asterisk.config, tmp, exten, hold_ms=1000)


class Clients:
    def __init__(self, asterisk: Instance, rec: Recorder,
                 handler: Callable[[ev.AriEvent], object] | None = None) -> None:
        creds = credentials(asterisk.config)
        port = asterisk.config.asterisk
        async def ari_reconnected() -> None:
            rec.reconnects["ari"] += 1

        async def ami_reconnected() -> None:
            rec.reconnects["ami"] += 1

        self.ari = AriClient(f"http://127.0.0.1:{port.http_port}", creds.ari_user, creds.ari_password,
                             asterisk.app, on_reconnect=ari_reconnected)
        self.ami = AmiClient("127.0.0.1", port.ami_port, creds.ami_user, creds.ami_password,
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


async def test_call_events_reach_ari_and_ami(asterisk: Instance, tmp_path: Path) -> None:
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
        await rec.wait_for(lambda: of(rec.ami, ev.Hangup, uniqueid=cid))

    assert start.args == ["inbound"] and start.channel.caller.number == "sipp"
    kinds = [type(e).__name__ for e in rec.ari if getattr(e, "channel", None) is not None
             and e.channel.id == cid]  # type: ignore[attr-defined]
    for earlier, later in [("ChannelCreated", "StasisStart"), ("StasisStart", "StasisEnd"),
                           ("StasisEnd", "ChannelDestroyed")]:
        assert kinds.index(earlier) < kinds.index(later), kinds
    # Variable sets are declined at the source (stasis.conf): neither stream carries them,
    # and the continue shows as the dialplan step it reached.
    assert not of(rec.ari, ev.ChannelVarset)
    assert [e for e in of(rec.ari, ev.ChannelDialplan) if e.channel.id == cid
            and (e.dialplan_app, e.dialplan_app_data) == ("Set", "CP_CONTINUED=yes")]
    assert of(rec.ari, ev.ChannelStateChange)
    # AMI sees the same call under the same id (ARI channel id == AMI Uniqueid).
    assert of(rec.ami, ev.Newchannel, uniqueid=cid)
    # manager.conf sends our AMI user only what the daemon consumes: no Cdr, no VarSet.
    assert not of(rec.ami, ev.VarSet)
    assert not of(rec.ami, ev.Cdr) and not [e for e in rec.ami if e.event == "Newexten"]
    assert of(rec.ami, ev.Hangup, uniqueid=cid)[0].channel.startswith("PJSIP/sipp-")


async def test_rest_helpers(asterisk: Instance) -> None:
    rec = Recorder()
    async with Clients(asterisk, rec) as clients:
        ari, ami = clients.ari, clients.ami
        info = await ari.asterisk_info()
        assert info["system"]["version"].startswith("22.")
        with pytest.raises(AriError) as err:
            await ari.hangup("no-such-channel")
        assert err.value.status == 404 and "not found" in str(err.value).lower()

        chan = await ari.originate("Local/hold@from-sipp", app=asterisk.app, app_args="out",
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
        # A list asked for, and a lone error as the reply (no such key): still a list, at once.
        missing = await ami.action({"Action": "DBGet", "Family": "cp-e2e", "Key": "none"}, as_list=True,
                                   check=False, timeout=3.0)
        assert isinstance(missing, list) and [m.get("Response") for m in missing] == ["Error"]
        with pytest.raises(AmiActionError):
            await ami.action({"Action": "NoSuchAction"})


async def test_clients_reconnect_after_asterisk_is_killed(asterisk: Instance,
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
