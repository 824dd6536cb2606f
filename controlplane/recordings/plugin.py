"""Wires the recordings capability: the media store every call-flow capability stores audio
through (``Context.media``), recording policies, recordings started by the dialplan (AMI
``UserEvent CpRecording``) and measured once their call is recorded, the routes, the sweep."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from cdr_ingest.records import CallRecord
from controlplane.asterisk.events import AmiEvent
from controlplane.plugins import Context, NoAsteriskFiles
from controlplane.recordings import http
from controlplane.recordings.media_store import LocalMediaStore, media_dirs
from controlplane.recordings.services import RecordingServices
from controlplane.voicemail.render import RecordingScope

log = structlog.get_logger(__name__)
SWEEP_SECONDS = 600.0
MAX_PENDING = 50_000
_NAME = re.compile(r"[0-9][0-9-]{0,63}")  # a uniqueid with its "." as "-"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_LINKEDID = re.compile(r"[0-9A-Za-z._-]{1,64}")


def _header(event: AmiEvent, name: str) -> str:
    value = event.headers.get(name, "")
    return str(value[0] if isinstance(value, list) and value else value)


@dataclass
class RecordingFollower:
    """``UserEvent CpRecording`` -> a recording row; the call's record -> measure its files.
    Only calls seen recording here are measured: every other record costs nothing."""

    services: RecordingServices
    recording_calls: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_ami(self, event: AmiEvent) -> None:
        if event.event != "UserEvent" or _header(event, "UserEvent") != "CpRecording":
            return
        tenant, name, linkedid = _header(event, "Tenant"), _header(event, "Name"), _header(event, "Linkedid")
        scope, ref = _header(event, "Scope"), _header(event, "Ref")
        if not (_TENANT.fullmatch(tenant) and _NAME.fullmatch(name) and _LINKEDID.fullmatch(linkedid)):
            log.warning("recordings.bad_event", tenant=tenant[:64], name=name[:64])
            return
        try:
            if not RecordingScope(scope).ref_ok(ref):
                return
        except ValueError:
            return
        if len(self.recording_calls) > MAX_PENDING:  # records never came (a restart): the sweep measures those
            self.recording_calls.clear()
        self.recording_calls.add(linkedid)
        task = asyncio.get_running_loop().create_task(self.services.started(tenant, linkedid, name, scope, ref))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_recorded(self, record: CallRecord) -> None:
        if record.linkedid in self.recording_calls:
            self.recording_calls.discard(record.linkedid)
            self.services.call_recorded(record.linkedid)


async def _sweep_forever(services: RecordingServices) -> None:
    while True:
        try:
            await services.sweep()
        except Exception:
            log.exception("recordings.sweep_failed")
        await asyncio.sleep(SWEEP_SECONDS)


@dataclass(frozen=True)
class RecordingsPlugin(NoAsteriskFiles):
    name: str = "recordings"
    package: str = "controlplane.recordings"

    def install(self, app: web.Application, context: Context) -> None:
        http.add_routes(app)
        if context.pool is None:  # the OpenAPI contract tests wire routes only
            return
        context.media = LocalMediaStore(media_dirs(context.config))
        services = RecordingServices(context.pool, lambda: context.media, context.flow_sections,
                                     context.signals.tenant_flows_changed, context.config.media)
        app[http.services_key] = services
        follower = RecordingFollower(services)
        context.ami_events.append(follower.on_ami)
        context.signals.call_recorded.connect(follower.on_recorded)
        context.background.append(context.once("recordings.sweep", lambda: _sweep_forever(services)))


PLUGIN = RecordingsPlugin()
