"""Wires the voicemail capability: its flow section (extensions, voicemail, retrieval, the
recording subroutines), the box and message routes, the AMI followers (PIN attempts, new
messages), the spool sweep with retention, and ``voicemail.conf``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from controlplane.asterisk.events import AmiEvent
from controlplane.plugins import AsteriskSource, Context
from controlplane.signals import TenantFlowsChanged
from controlplane.recordings.media_store import instance_dir
from controlplane.voicemail import http
from controlplane.voicemail.section import VoicemailSection
from controlplane.voicemail.services import VoicemailServices
from provisioning.names import NUMBER_PATTERN

log = structlog.get_logger(__name__)
SWEEP_SECONDS = 60.0
EXPIRE_EVERY = 60  # sweeps: retention runs about hourly

# Asterisk never mails (the view's email is NULL; attach=no): the daemon sends through the
# outbox. Messages are PCM WAV (``wav``), which the media store and the API hand out as is.
VOICEMAIL_CONF = """; Rendered by the control plane (controlplane/voicemail): boxes come from the realtime
; view voicemail_realtime (extconfig.conf), one context per tenant (<prefix>-vm).
[general]
format = wav
attach = no
maxmsg = 100
maxsecs = 300
minsecs = 1
; no silence cut-off (it must stay below minsecs): a message ends when the caller hangs up
maxsilence = 0
silencethreshold = 128
maxlogins = 3
review = no
operator = no
saycid = no
sayduration = no
envelope = no
searchcontexts = no
sendvoicemail = no
pollmailboxes = no
nextaftercmd = yes
"""


def _header(event: AmiEvent, name: str) -> str:
    value = event.headers.get(name)
    if value is None:
        value = next((v for k, v in event.headers.items() if k.lower() == name.lower()), "")
    return str(value[0] if isinstance(value, list) and value else value)


@dataclass
class VoicemailFollower:
    """Follows AMI: ``UserEvent CpVoicemailLogin`` (a PIN attempt) and ``MessageWaiting``
    (a box changed: maybe a new message). Each is handled on a task of its own, so the
    event stream never waits for the database."""

    services: VoicemailServices
    tasks: set[asyncio.Task[object]] = field(default_factory=set)

    def _spawn(self, work: Awaitable[object]) -> None:
        async def run() -> object:
            try:
                return await work
            except Exception:  # one failed import must not end the follower
                log.exception("voicemail.event_failed")
                return None

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_ami(self, event: AmiEvent) -> None:
        if event.event == "UserEvent" and _header(event, "UserEvent") == "CpVoicemailLogin":
            tenant, mailbox, result = (_header(event, k) for k in ("Tenant", "Mailbox", "Result"))
            if re.fullmatch(NUMBER_PATTERN, mailbox) and result in ("ok", "fail"):
                self._spawn(self.services.login_attempt(tenant, mailbox, result == "ok"))
        elif event.event == "MessageWaiting":
            box, _, context = _header(event, "Mailbox").partition("@")
            if re.fullmatch(NUMBER_PATTERN, box) and context.endswith("-vm"):
                self._spawn(self.services.import_box(context, box))


async def _sweep_forever(services: VoicemailServices) -> None:
    rounds = 0
    while True:
        try:
            imported = await services.sweep()
            if imported:
                log.info("voicemail.swept", imported=imported)
            if rounds % EXPIRE_EVERY == 0:
                expired = await services.expire()
                if expired:
                    log.info("voicemail.expired", messages=expired)
        except Exception:
            log.exception("voicemail.sweep_failed")
        rounds += 1
        await asyncio.sleep(SWEEP_SECONDS)


@dataclass(frozen=True)
class VoicemailPlugin:
    name: str = "voicemail"
    package: str = "controlplane.voicemail"

    async def asterisk_files(self, source: AsteriskSource) -> Mapping[str, str]:
        return {"voicemail.conf": VOICEMAIL_CONF}

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        context.flow_sections.append(VoicemailSection(lambda: context.media))
        if context.pool is None:
            return
        instance = instance_dir(context.config)
        spool_dir = instance / "spool" if instance is not None else None
        if spool_dir is None:
            log.warning("voicemail.no_spool", detail="the Asterisk instance directory is not shared with the"
                        " daemon: messages are not imported (set asterisk.config_dir)")
        flows_changed = context.signals.tenant_flows_changed
        services = VoicemailServices(context.pool, lambda: context.media, spool_dir, context.config.media,
                                     lambda tenant_id: flows_changed.send(TenantFlowsChanged(tenant_id)))
        app[http.services_key] = services
        follower = VoicemailFollower(services)
        context.ami_events.append(follower.on_ami)
        context.background.append(context.once("voicemail.sweep", lambda: _sweep_forever(services)))


PLUGIN = VoicemailPlugin()
