"""Voicemail decisions: box settings and greetings, PIN lockout, messages taken from Asterisk's
spool (once each) into the media store with their email, listing, download and retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import structlog

from controlplane.config import MediaConfig
from controlplane.mail import store as mail_store
from controlplane.mail.render import Attachment
from controlplane.shared.audio import normalize
from controlplane.shared.media import MediaKey, MediaKind, MediaStore
from controlplane.shared.problems import FieldError, Problem
from controlplane.voicemail import lockout, spool, store
from controlplane.voicemail.models import UNSET, VoicemailMessage, VoicemailSettings, VoicemailUpdate, check_email
from provisioning.names import voicemail_context

log = structlog.get_logger(__name__)
GREETING_MAX_SECONDS = 120.0
MAIL_TEMPLATE = "voicemail_message"


def _not_found(what: str) -> Problem:
    return Problem(404, f"no such {what}", code="not_found")


def greeting_key(tenant_id: str, extension_id: str) -> MediaKey:
    return MediaKey(tenant_id, MediaKind.GREETING, extension_id.lower().replace("_", "-"))


def message_key(tenant_id: str, message_id: str) -> MediaKey:
    return MediaKey(tenant_id, MediaKind.VOICEMAIL, message_id)


def _settings(box: store.BoxRow) -> VoicemailSettings:
    now = datetime.now(UTC)
    return VoicemailSettings(extension_id=box.extension_id, number=box.number, enabled=box.enabled,
                             pin_set=box.pin is not None, email=box.email, attach_audio=box.attach_audio,
                             has_greeting=box.has_greeting,
                             locked_until=box.lock.locked_until if box.lock.locked(now) else None)


def _message(row: store.MessageRow) -> VoicemailMessage:
    return VoicemailMessage(id=row.id, tenant_id=row.tenant_id, extension_id=row.extension_id, mailbox=row.mailbox,
                            caller=row.caller, duration_s=row.duration_s, received_at=row.received_at,
                            size_bytes=row.size_bytes, emailed=row.emailed)


class VoicemailServices:
    def __init__(self, pool: asyncpg.Pool, media: Callable[[], MediaStore | None], spool_dir: Path | None,
                 config: MediaConfig, flows_changed: Callable[[str], None] | None = None) -> None:
        self.pool = pool
        # a box changed: its tenant's flows context is (re)applied, so a tenant whose context was
        # never rendered (created since the daemon started) gets ext-*/vm-*/vmmain now
        self._flows_changed = flows_changed or (lambda tenant_id: None)
        self._media = media  # read at use: the recordings plugin sets it
        self.spool = spool_dir
        self.config = config
        self._box_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def media(self) -> MediaStore:
        found = self._media()
        if found is None:
            raise Problem(503, "the media store is not available", code="media_unavailable")
        return found

    async def _tenant(self, conn: store.Conn, partner_id: str, tenant_id: str) -> store.TenantRef:
        found = await store.tenant(conn, partner_id, tenant_id)
        if found is None:
            raise _not_found("tenant")
        return found

    async def _box(self, conn: store.Conn, tenant_id: str, extension_id: str, *, lock: bool = False) -> store.BoxRow:
        box = await store.box(conn, tenant_id, extension_id, lock=lock)
        if box is None:
            raise _not_found("extension")
        return box

    # ---------------------------------------------------------------- settings and greeting

    async def settings(self, partner_id: str, tenant_id: str, extension_id: str) -> VoicemailSettings:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            return _settings(await self._box(conn, tenant_id, extension_id))

    async def update(self, partner_id: str, tenant_id: str, extension_id: str,
                     body: VoicemailUpdate) -> VoicemailSettings:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            box = await self._box(conn, tenant_id, extension_id, lock=True)
            errors: dict[str, str] = {}
            if body.pin is not UNSET:
                why = lockout.check_pin(body.pin, box.number)
                if why:
                    errors["pin"] = why
            if isinstance(body.email, str):
                why = check_email(body.email)
                if why:
                    errors["email"] = why
            if errors:
                raise Problem(422, "invalid voicemail settings", code="invalid_request",
                              errors=[FieldError(f, m) for f, m in errors.items()])
            pin = box.pin if body.pin is UNSET else body.pin
            # a PIN set by the owner through the API ends any lockout (lockout.py)
            lock = box.lock if body.pin is UNSET else lockout.LockState()
            email = box.email if body.email is UNSET else body.email
            attach = box.attach_audio if body.attach_audio is UNSET else body.attach_audio
            updated = store.BoxRow(box.extension_id, box.tenant_id, box.number, box.display_name, box.enabled,
                                   pin, email, attach, box.has_greeting, lock)
            await store.save_box(conn, updated)
        log.info("voicemail.settings_changed", tenant_id=tenant_id, extension_id=extension_id,
                 pin_changed=body.pin is not UNSET)
        self._flows_changed(tenant_id)
        return _settings(updated)

    async def put_greeting(self, partner_id: str, tenant_id: str, extension_id: str, data: bytes
                           ) -> VoicemailSettings:
        wav = normalize(data, max_bytes=self.config.max_upload_bytes,
                        max_seconds=min(GREETING_MAX_SECONDS, self.config.max_upload_seconds), field="greeting")
        media = self.media()
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            box = await self._box(conn, tenant_id, extension_id, lock=True)
            await media.put(greeting_key(tenant_id, extension_id), wav)
            if self.spool is not None:
                await asyncio.to_thread(spool.write_greeting, self.spool, voicemail_context(tenant.prefix),
                                        box.number, wav)
            updated = store.BoxRow(box.extension_id, box.tenant_id, box.number, box.display_name, box.enabled,
                                   box.pin, box.email, box.attach_audio, True, box.lock)
            await store.save_box(conn, updated)
        self._flows_changed(tenant_id)
        return _settings(updated)

    async def delete_greeting(self, partner_id: str, tenant_id: str, extension_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            tenant = await self._tenant(conn, partner_id, tenant_id)
            box = await self._box(conn, tenant_id, extension_id, lock=True)
            await self.media().delete(greeting_key(tenant_id, extension_id))
            if self.spool is not None:
                await asyncio.to_thread(spool.remove_greeting, self.spool, voicemail_context(tenant.prefix),
                                        box.number)
            await store.save_box(conn, store.BoxRow(box.extension_id, box.tenant_id, box.number, box.display_name,
                                                    box.enabled, box.pin, box.email, box.attach_audio, False,
                                                    box.lock))

    # ---------------------------------------------------------------- PIN attempts (from the dialplan)

    async def login_attempt(self, tenant_id: str, mailbox: str, ok: bool) -> None:
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            box = await store.box_by_number(conn, tenant_id, mailbox, lock=True)
            if box is None:
                return
            lock = lockout.on_success(box.lock, now) if ok else lockout.on_failure(box.lock, now)
            if lock == box.lock:
                return
            await store.save_box(conn, store.BoxRow(box.extension_id, box.tenant_id, box.number, box.display_name,
                                                    box.enabled, box.pin, box.email, box.attach_audio,
                                                    box.has_greeting, lock))
        if lock.locked(now):
            log.warning("voicemail.locked", tenant_id=tenant_id, mailbox=mailbox, until=lock.locked_until.isoformat()
                        if lock.locked_until else None, lockouts=lock.lockouts)

    # ---------------------------------------------------------------- messages

    async def list_messages(self, partner_id: str, tenant_id: str, extension_id: str | None, limit: int,
                            before: tuple[datetime, str] | None) -> tuple[list[VoicemailMessage], bool]:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            rows = await store.list_messages(conn, tenant_id, extension_id, limit + 1, before)
        return [_message(r) for r in rows[:limit]], len(rows) > limit

    async def message(self, partner_id: str, tenant_id: str, message_id: str) -> VoicemailMessage:
        async with self.pool.acquire() as conn:
            await self._tenant(conn, partner_id, tenant_id)
            row = await store.get_message(conn, tenant_id, message_id)
        if row is None:
            raise _not_found("message")
        return _message(row)

    async def audio(self, partner_id: str, tenant_id: str, message_id: str) -> bytes:
        await self.message(partner_id, tenant_id, message_id)
        data = await self.media().get(message_key(tenant_id, message_id))
        if data is None:
            raise _not_found("message audio")
        return data

    async def delete_message(self, partner_id: str, tenant_id: str, message_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._tenant(conn, partner_id, tenant_id)
            if not await store.delete_message(conn, tenant_id, message_id):
                raise _not_found("message")
            await self.media().delete(message_key(tenant_id, message_id))

    # ---------------------------------------------------------------- import from the spool

    def _lock(self, context: str, box: str) -> asyncio.Lock:
        return self._box_locks.setdefault((context, box), asyncio.Lock())

    async def import_box(self, context: str, box: str) -> int:
        """Take the box's new messages into the media store and the database, each once,
        queueing its email in the same transaction. The number imported."""
        if self.spool is None or not context.endswith("-vm"):
            return 0
        async with self._lock(context, box):
            try:
                found = await asyncio.to_thread(spool.scan_box, self.spool, context, box)
            except ValueError:
                return 0
            if not found:
                return 0
            async with self.pool.acquire() as conn:
                tenant = await store.tenant_by_prefix(conn, context.removesuffix("-vm"))
                if tenant is None:
                    return 0
                known = await store.known_ids(conn, tenant.id, box)
                count = 0
                for message in found:
                    if message.msg_id not in known and await self._import(conn, tenant, box, message):
                        count += 1
        return count

    async def _import(self, conn: store.Conn, tenant: store.TenantRef, box: str, message: spool.SpoolMessage) -> bool:
        try:
            data = await asyncio.to_thread(message.wav.read_bytes)
        except OSError:
            return False  # moved or deleted by Asterisk meanwhile: the next sweep sees it where it went
        message_id = str(uuid.uuid4())
        media = self.media()
        await media.put(message_key(tenant.id, message_id), data)
        try:
            async with conn.transaction():
                settings = await store.box_by_number(conn, tenant.id, box)
                email = settings.email if settings and settings.enabled else None
                inserted = await store.insert_message(
                    conn, message_id=message_id, tenant_id=tenant.id,
                    extension_id=settings.extension_id if settings else None, mailbox=box,
                    asterisk_id=message.msg_id, caller=message.caller, duration_s=message.duration_s,
                    received_at=message.received_at, size_bytes=len(data), emailed=email is not None)
                if inserted and email is not None and settings is not None:
                    await self._queue_mail(conn, tenant, settings, message_id, message, data, email)
        except BaseException:
            await media.delete(message_key(tenant.id, message_id))
            raise
        if not inserted:
            await media.delete(message_key(tenant.id, message_id))
            return False
        log.info("voicemail.message", tenant_id=tenant.id, mailbox=box, message_id=message_id,
                 duration_s=message.duration_s, emailed=email is not None)
        return True

    async def _queue_mail(self, conn: store.Conn, tenant: store.TenantRef, box: store.BoxRow, message_id: str,
                          message: spool.SpoolMessage, data: bytes, email: str) -> None:
        stamp = message.received_at.strftime("%Y%m%d-%H%M%S")
        filename = f"voicemail-{box.number}-{stamp}.wav"
        attachments = [Attachment(filename, "audio/wav", data)] if box.attach_audio else []
        values = {"mailbox": box.number, "caller": message.caller, "duration_s": message.duration_s,
                  "received_at": message.received_at.strftime("%Y-%m-%d %H:%M:%S UTC"), "attached": box.attach_audio,
                  "filename": filename, "message_id": message_id}
        try:
            await mail_store.enqueue(conn, partner_id=tenant.partner_id, to=email, template=MAIL_TEMPLATE,
                                     values=values, reference=f"voicemail:{message_id}", attachments=attachments)
        except ValueError as exc:  # an address that passed our check but not the outbox's
            log.warning("voicemail.mail_refused", tenant_id=tenant.id, mailbox=box.number, error=str(exc))

    async def sweep(self) -> int:
        """Every box of the spool (what a missed MessageWaiting event left behind)."""
        if self.spool is None:
            return 0
        boxes = await asyncio.to_thread(spool.spool_boxes, self.spool)
        total = 0
        for context, box in boxes:
            total += await self.import_box(context, box)
        return total

    # ---------------------------------------------------------------- retention and purge

    async def expire(self) -> int:
        """Messages past their tenant's retention: rows, stored audio, and the spool's copies."""
        default = self.config.voicemail_retention_days
        async with self.pool.acquire() as conn:
            expired = await store.expired_messages(conn, default)
            if expired:
                await store.delete_messages(conn, [m for _, m in expired])
        media = self._media()
        if media is not None:
            for tenant_id, message_id in expired:
                await media.delete(message_key(tenant_id, message_id))
        if self.spool is not None:
            await self._expire_spool(default)
        return len(expired)

    async def _expire_spool(self, default: int) -> None:
        assert self.spool is not None
        boxes = await asyncio.to_thread(spool.spool_boxes, self.spool)
        async with self.pool.acquire() as conn:
            by_prefix = {}
            for context, box in boxes:
                prefix = context.removesuffix("-vm")
                if prefix not in by_prefix:
                    tenant = await store.tenant_by_prefix(conn, prefix)
                    by_prefix[prefix] = None if tenant is None else await store.retention_days(conn, tenant.id,
                                                                                               default)
                days = by_prefix[prefix]
                if days is None:  # the tenant was purged: its boxes go with it
                    await asyncio.to_thread(spool.remove_context, self.spool, context)
                    continue
                before = datetime.now(UTC) - timedelta(days=days)
                async with self._lock(context, box):
                    await asyncio.to_thread(spool.delete_older, self.spool, context, box, before)
