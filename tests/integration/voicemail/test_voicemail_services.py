"""Voicemail and recording services on a real PostgreSQL: settings (422 naming fields, nothing
changed), the PIN lockout fed by the dialplan's attempts, messages imported from an app_voicemail
spool once each with their email (attachment through the outbox to a real aiosmtpd), tenant
scope, retention, recording policies and the realtime view Asterisk reads."""

from __future__ import annotations

import math
import secrets
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import asyncpg
import pytest
from mail_support import partner as make_partner
from mail_support import worker
from smtp_support import smtp_server

from controlplane.config import MediaConfig
from controlplane.recordings.media_store import LocalMediaStore, MediaDirs
from controlplane.recordings import services as recording_services
from controlplane.recordings.services import RecordingServices, recording_key
from controlplane.shared.audio import AudioRejected, measure, write_wav
from controlplane.shared.problems import Problem
from controlplane.signals import Notice, TenantFlowsChanged
from controlplane.voicemail.models import VoicemailUpdate
from controlplane.voicemail.section import VoicemailSection
from controlplane.voicemail.services import VoicemailServices
from provisioning.destinations import Destination, DestinationKind


def tone(seconds: float) -> bytes:
    return write_wav(array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(int(seconds * 8000)))))


@dataclass
class World:
    pool: asyncpg.Pool
    vm: VoicemailServices
    rec: RecordingServices
    media: LocalMediaStore
    spool: Path
    partner: str
    tenant: str
    prefix: str
    ext: str
    other_tenant: str
    changed: list[str]


async def _tenant(pool: asyncpg.Pool, partner: str) -> tuple[str, str]:
    tenant, prefix = f"ten_{secrets.token_hex(6)}", "v" + secrets.token_hex(4)
    await pool.execute("INSERT INTO tenants (id, partner_id, name, sip_prefix, billing_email, status)"
                       " VALUES ($1, $2, 'T', $3, 'b@example.com', 'ACTIVE')", tenant, partner, prefix)
    return tenant, prefix


@pytest.fixture
async def world(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[World]:
    partner = await make_partner(pool)
    tenant, prefix = await _tenant(pool, partner)
    other, _ = await _tenant(pool, partner)
    ext = f"ext_{secrets.token_hex(6)}"
    await pool.execute("INSERT INTO extensions (id, tenant_id, number, display_name, sip_ha1, voicemail_enabled)"
                       " VALUES ($1, $2, '101', 'Alice', 'x', true)", ext, tenant)
    media = LocalMediaStore(MediaDirs(tmp_path / "media", PurePosixPath("/srv/controlplane/t/spool/media")))
    config = MediaConfig(max_upload_bytes=2_000_000, max_upload_seconds=60)
    changed: list[str] = []
    notice: Notice[TenantFlowsChanged] = Notice("tenant_flows_changed")
    notice.connect(lambda c: changed.append(c.tenant_id))
    notice.freeze()
    vm = VoicemailServices(pool, lambda: media, tmp_path / "spool", config)
    section = VoicemailSection(lambda: media)
    rec = RecordingServices(pool, lambda: media, [section], notice, config)
    yield World(pool, vm, rec, media, tmp_path / "spool", partner, tenant, prefix, ext, other, changed)


async def test_settings_422_names_every_field_and_changes_nothing(world: World) -> None:
    w = world
    with pytest.raises(Problem) as bad:
        await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="12", email="not an address"))
    assert bad.value.status == 422 and {e.field for e in bad.value.errors} == {"pin", "email"}
    with pytest.raises(Problem) as weak:
        await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="101"))
    assert weak.value.errors[0].field == "pin"
    before = await w.vm.settings(w.partner, w.tenant, w.ext)
    assert not before.pin_set and before.email is None and before.enabled
    after = await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="4826", email="alice@example.com"))
    assert after.pin_set and after.email == "alice@example.com"
    row = await w.pool.fetchrow("SELECT * FROM voicemail_realtime WHERE uniqueid = $1", f"{w.prefix}_101")
    assert (row["context"], row["mailbox"], row["password"], row["email"], row["locked"]) == (
        f"{w.prefix}-vm", "101", "4826", None, "0")


async def test_another_tenant_reaches_nothing(world: World) -> None:
    w = world
    with pytest.raises(Problem) as caught:
        await w.vm.settings(w.partner, w.other_tenant, w.ext)
    assert caught.value.status == 404
    with pytest.raises(Problem):
        await w.vm.settings("ptr_nobody", w.tenant, w.ext)
    section = VoicemailSection(lambda: w.media)
    async with w.pool.acquire() as conn:
        assert await section.exists(conn, w.tenant, Destination(DestinationKind.VOICEMAIL, "101"))
        assert not await section.exists(conn, w.other_tenant, Destination(DestinationKind.VOICEMAIL, "101"))
        assert not await section.exists(conn, w.other_tenant, Destination(DestinationKind.EXTENSION, "101"))
        rendered = await section.render(conn, [w.tenant, w.other_tenant])
    assert f"PJSIP/{w.prefix}_${{CP_EXT}}" in "\n".join(rendered[w.tenant])
    assert w.prefix not in "\n".join(rendered[w.other_tenant])


async def test_pin_lockout_from_reported_attempts(world: World) -> None:
    w = world
    await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="4826"))
    for _ in range(4):
        await w.vm.login_attempt(w.tenant, "101", False)
    assert await w.pool.fetchval("SELECT locked FROM voicemail_realtime WHERE uniqueid = $1",
                                 f"{w.prefix}_101") == "0"
    await w.vm.login_attempt(w.tenant, "101", False)
    assert await w.pool.fetchval("SELECT locked FROM voicemail_realtime WHERE uniqueid = $1",
                                 f"{w.prefix}_101") == "1"
    assert (await w.vm.settings(w.partner, w.tenant, w.ext)).locked_until is not None
    await w.vm.login_attempt(w.other_tenant, "101", True)  # another tenant's event touches nothing
    assert (await w.vm.settings(w.partner, w.tenant, w.ext)).locked_until is not None
    await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="5937"))  # the owner resets it
    assert (await w.vm.settings(w.partner, w.tenant, w.ext)).locked_until is None


async def test_greeting_upload_bad_input_is_422_and_changes_nothing(world: World) -> None:
    w = world
    for data, reason in ((b"ID3\x03" + b"\0" * 100, "unsupported_type"), (tone(61), "too_long"),
                         (b"x" * 2_000_001, "too_large")):
        with pytest.raises(AudioRejected) as caught:
            await w.vm.put_greeting(w.partner, w.tenant, w.ext, data)
        assert caught.value.reason == reason and caught.value.errors[0].field == "greeting"
    assert not (await w.vm.settings(w.partner, w.tenant, w.ext)).has_greeting
    assert not w.spool.exists()
    settings = await w.vm.put_greeting(w.partner, w.tenant, w.ext, tone(1.5))
    assert settings.has_greeting
    unavail = w.spool / "voicemail" / f"{w.prefix}-vm" / "101" / "unavail.wav"
    assert abs(measure(unavail.read_bytes()).seconds - 1.5) < 0.01


def _deposit(spool: Path, prefix: str, n: int, seconds: float, origtime: int = 1796119200) -> None:
    inbox = spool / "voicemail" / f"{prefix}-vm" / "101" / "INBOX"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / f"msg{n:04d}.wav").write_bytes(tone(seconds))
    (inbox / f"msg{n:04d}.txt").write_text(
        f"[message]\norigmailbox=101\ncallerid=\"Bob\" <+14155550123>\norigtime={origtime + n}\n"
        f"msg_id={origtime + n}-0000000{n}\nduration={int(seconds)}\n")


async def test_messages_are_imported_once_mailed_with_audio_and_scoped(world: World) -> None:
    w = world
    await w.vm.update(w.partner, w.tenant, w.ext, VoicemailUpdate(pin="4826", email="alice@example.com"))
    _deposit(w.spool, w.prefix, 0, 5.0, int(time.time()) - 60)
    assert await w.vm.import_box(f"{w.prefix}-vm", "101") == 1
    assert await w.vm.import_box(f"{w.prefix}-vm", "101") == 0  # once, however often it is swept
    assert await w.vm.sweep() == 0
    items, more = await w.vm.list_messages(w.partner, w.tenant, None, 20, None)
    assert len(items) == 1 and not more and items[0].emailed and items[0].duration_s == 5
    audio = await w.vm.audio(w.partner, w.tenant, items[0].id)
    assert abs(measure(audio).seconds - 5.0) < 0.01
    with pytest.raises(Problem) as other:
        await w.vm.audio(w.partner, w.other_tenant, items[0].id)
    assert other.value.status == 404
    async with smtp_server() as smtp:
        await worker(w.pool, smtp).run_once()
        mail = (await smtp.wait_for(1))[0]
    assert mail.rcpt_tos == ["alice@example.com"] and "101" in mail.message["Subject"]
    (name, ctype, data), = mail.attachments()
    assert ctype == "audio/wav" and name.startswith("voicemail-101-")
    assert abs(measure(data).seconds - 5.0) < 1.0


async def test_retention_expires_messages(world: World) -> None:
    w = world
    _deposit(w.spool, w.prefix, 1, 2.0, 1_000_000_000)  # 2001: long past any retention
    assert await w.vm.import_box(f"{w.prefix}-vm", "101") == 1
    assert await w.vm.expire() >= 1
    items, _ = await w.vm.list_messages(w.partner, w.tenant, None, 20, None)
    assert items == []
    assert not list((w.spool / "voicemail" / f"{w.prefix}-vm" / "101" / "INBOX").glob("msg0001.*"))


async def test_recording_policies_validate_and_re_render(world: World) -> None:
    w = world
    with pytest.raises(Problem) as bad:
        await w.rec.put_policy(w.partner, w.tenant, "extension", "1;0", "sometimes")
    assert {e.field for e in bad.value.errors} == {"ref", "mode"}
    with pytest.raises(Problem) as missing:
        await w.rec.put_policy(w.partner, w.tenant, "extension", "999", "always")
    assert missing.value.errors[0].field == "ref"
    with pytest.raises(Problem):  # the other tenant has no extension 101
        await w.rec.put_policy(w.partner, w.other_tenant, "extension", "101", "always")
    assert w.changed == [] and await w.rec.list_policies(w.partner, w.tenant) == []
    await w.rec.put_policy(w.partner, w.tenant, "extension", "101", "always")
    assert w.changed == [w.tenant]
    async with w.pool.acquire() as conn:
        lines = (await VoicemailSection(lambda: w.media).render(conn, [w.tenant]))[w.tenant]
    assert "exten => ext-101,1,Set(CP_REC=always)" in lines


async def test_recordings_measured_once_the_call_is_recorded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    await w.rec.started(w.tenant, "1796119200.7", "1796119200-7", "extension", "101")
    await w.rec.started(w.tenant, "1796119200.7", "1796119200-8", "extension", "101")  # never bridged
    await w.media.put(recording_key(w.tenant, "1796119200-7"), tone(3.0))
    monkeypatch.setattr(recording_services, "FINISH_WAIT", 0.01)
    await w.rec.finish_call("1796119200.7")
    rows, _ = await w.rec.list(w.partner, w.tenant, None, 20, None)
    assert [(r.uniqueid, round(r.duration_s, 1)) for r in rows] == [("1796119200-7", 3.0)]
    assert abs(measure(await w.rec.audio(w.partner, w.tenant, rows[0].id)).seconds - 3.0) < 0.01
    with pytest.raises(Problem):
        await w.rec.audio(w.partner, w.other_tenant, rows[0].id)


async def test_a_purged_tenants_media_and_boxes_go(world: World) -> None:
    """Seed 003 "Deleting a tenant": once the tenant's rows are gone (the purge), the sweeps remove
    its files: the media directory and its voicemail context's spool."""
    w = world
    gone, gone_prefix = "ten_" + secrets.token_hex(6), "z" + secrets.token_hex(4)
    await w.media.put(recording_key(gone, "1796119200-9"), tone(0.5))
    await w.media.put(recording_key(w.tenant, "1796119200-10"), tone(0.5))  # a live tenant's: kept
    _deposit(w.spool, gone_prefix, 0, 1.0)
    _deposit(w.spool, w.prefix, 2, 1.0, int(time.time()))
    await w.rec.sweep()
    await w.vm.expire()
    assert gone not in await w.media.tenant_dirs() and w.tenant in await w.media.tenant_dirs()
    assert not (w.spool / "voicemail" / f"{gone_prefix}-vm").exists()
    assert (w.spool / "voicemail" / f"{w.prefix}-vm" / "101" / "INBOX" / "msg0002.wav").exists()
