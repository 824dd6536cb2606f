-- Voicemail and call recording (controlplane/voicemail, controlplane/recordings; docs/voicemail.md).

-- ---------------------------------------------------------------- voicemail boxes
-- A box exists while its extension has voicemail_enabled (the tenants capability's flag);
-- this row holds its settings. The PIN is kept as digits: Asterisk compares it in the
-- dialplan (REALTIME_FIELD), which cannot hash.
CREATE TABLE voicemail_boxes (
    extension_id  text PRIMARY KEY REFERENCES extensions (id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pin           text CHECK (pin ~ '^[0-9]{4,10}$'),
    email         text CHECK (char_length(email) <= 254),
    attach_audio  boolean NOT NULL DEFAULT true,
    has_greeting  boolean NOT NULL DEFAULT false,
    -- PIN lockout (controlplane/voicemail/lockout.py): wrong PINs since the last good one
    -- or lockout, lockouts since the last good PIN, and until when the box refuses logins.
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    lockouts      integer NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX voicemail_boxes_tenant ON voicemail_boxes (tenant_id);

-- What app_voicemail reads (extconfig.conf: voicemail => pgsql,general,voicemail_realtime):
-- one row per extension with voicemail enabled, live on the next call, no reload. The
-- context is the tenant's own (<prefix>-vm): a box is unreachable from another tenant's.
-- email is always NULL: Asterisk never mails; the daemon does, through the outbox.
-- uniqueid is the phone's endpoint name, so the dialplan finds the caller's own box by it.
CREATE VIEW voicemail_realtime AS
SELECT t.sip_prefix || '_' || e.number AS uniqueid,
       t.sip_prefix || '-vm' AS context,
       e.number AS mailbox,
       b.pin AS password,
       e.display_name AS fullname,
       NULL::text AS email,
       'no'::text AS attach,
       CASE WHEN b.locked_until > now() THEN '1' ELSE '0' END AS locked
FROM extensions e
JOIN tenants t ON t.id = e.tenant_id
LEFT JOIN voicemail_boxes b ON b.extension_id = e.id
WHERE e.voicemail_enabled AND t.status <> 'CANCELLED';

-- Messages taken from Asterisk's spool into the media store (MediaKind.VOICEMAIL, name = id).
CREATE TABLE voicemail_messages (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    extension_id  text REFERENCES extensions (id) ON DELETE SET NULL,
    mailbox       text NOT NULL CHECK (mailbox ~ '^[0-9]{2,6}$'),
    -- app_voicemail's msg_id: a message is imported once however often the spool is swept
    asterisk_id   text NOT NULL CHECK (char_length(asterisk_id) <= 100),
    caller        text NOT NULL DEFAULT '' CHECK (char_length(caller) <= 200),
    duration_s    integer NOT NULL CHECK (duration_s >= 0),
    received_at   timestamptz NOT NULL,
    size_bytes    integer NOT NULL,
    emailed       boolean NOT NULL DEFAULT false,
    UNIQUE (tenant_id, mailbox, asterisk_id)
);
CREATE INDEX voicemail_messages_tenant ON voicemail_messages (tenant_id, received_at DESC, id DESC);

-- ---------------------------------------------------------------- retention
-- Per tenant; none: the platform defaults (voicemail.retention_days, recordings.retention_days).
CREATE TABLE media_retention (
    tenant_id        text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    voicemail_days   integer NOT NULL CHECK (voicemail_days BETWEEN 1 AND 3650),
    recording_days   integer NOT NULL CHECK (recording_days BETWEEN 1 AND 3650),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- recording
-- What is recorded: per extension (ref: number), DID (ref: E.164) or queue (ref: id).
-- on_demand: the *1 feature (automixmon) starts/stops it during the call.
CREATE TABLE recording_policies (
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope      text NOT NULL CHECK (scope IN ('extension', 'did', 'queue')),
    ref        text NOT NULL CHECK (ref ~ '^([0-9]{2,6}|\+[1-9][0-9]{6,14}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$'),
    mode       text NOT NULL CHECK (mode IN ('always', 'never', 'on_demand')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, scope, ref)
);

-- One file per recorded call leg, named by the channel's uniqueid; linked to the call
-- record by linkedid (the record may be written before or after the file is found).
CREATE TABLE recordings (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    linkedid    text NOT NULL,
    uniqueid    text NOT NULL UNIQUE,
    scope       text NOT NULL,
    ref         text NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_s  numeric(10, 2) NOT NULL DEFAULT 0,
    size_bytes  integer NOT NULL DEFAULT 0
);
CREATE INDEX recordings_tenant ON recordings (tenant_id, started_at DESC, id DESC);
CREATE INDEX recordings_linkedid ON recordings (linkedid);

-- ---------------------------------------------------------------- message waiting
-- The phone's box for unsolicited MWI NOTIFYs (provisioning.pjsip: set while voicemail is on).
ALTER TABLE ps_endpoints ADD COLUMN mailboxes varchar(200);
