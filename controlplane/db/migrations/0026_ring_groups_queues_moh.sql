-- Ring groups, queues and music on hold (controlplane/ring_groups, queues, moh; docs/queues.md),
-- and call records per billed leg.

-- ---------------------------------------------------------------- call records per billed leg
-- A call (one linkedid) used to have exactly one record. A call that reaches an external
-- number from inside the tenant's flows (a ring group's external member, a forward) places
-- a carrier leg of its own, billed as an outbound call: that leg is a record of its own,
-- keyed (linkedid, leg) where leg is the carrier channel's name ('' = the call itself).
-- Both ingestion paths (AMI live, Asterisk's CDRs) derive the same key, so each leg is
-- still rated once, never twice.
ALTER TABLE call_records ADD COLUMN leg text NOT NULL DEFAULT ''
    CHECK (char_length(leg) <= 200);
ALTER TABLE call_records DROP CONSTRAINT call_records_linkedid_key;
CREATE UNIQUE INDEX call_records_linkedid_leg ON call_records (linkedid, leg);

-- ---------------------------------------------------------------- ring groups
CREATE TABLE ring_groups (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    strategy         text NOT NULL CHECK (strategy IN ('ring_all', 'sequential')),
    ring_seconds     integer NOT NULL CHECK (ring_seconds BETWEEN 5 AND 300),
    -- members in ring order: {"kind": "extension"|"external", "number": "101"|"+1..."}
    members          jsonb NOT NULL,
    no_answer_kind   text,
    no_answer_ref    text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ring_groups_tenant ON ring_groups (tenant_id, created_at, id);

-- ---------------------------------------------------------------- queues
CREATE TABLE call_queues (
    id                uuid PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    -- Asterisk's own names: ringall, rrmemory, leastrecent, fewestcalls
    strategy          text NOT NULL CHECK (strategy IN ('ringall', 'rrmemory', 'leastrecent', 'fewestcalls')),
    ring_seconds      integer NOT NULL CHECK (ring_seconds BETWEEN 5 AND 120),
    max_wait_seconds  integer NOT NULL CHECK (max_wait_seconds BETWEEN 10 AND 7200),
    max_callers       integer NOT NULL CHECK (max_callers BETWEEN 0 AND 1000),
    announce_position boolean NOT NULL DEFAULT false,
    moh_class         text NOT NULL CHECK (moh_class ~ '^[a-z0-9-]{1,64}$'),
    overflow_kind     text,
    overflow_ref      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Asterisk's name of the queue, stored so app_queue's look-up by name is an index scan
    asterisk_name     text GENERATED ALWAYS AS ('q-' || id::text) STORED UNIQUE
);
CREATE INDEX call_queues_tenant ON call_queues (tenant_id, created_at, id);

CREATE TABLE call_queue_members (
    uniqueid    bigserial PRIMARY KEY,
    queue_id    uuid NOT NULL REFERENCES call_queues (id) ON DELETE CASCADE,
    number      text NOT NULL CHECK (number ~ '^[0-9]{2,6}$'),
    -- PJSIP/<prefix>_<number>, built by provisioning.names from validated parts
    interface   text NOT NULL CHECK (interface ~ '^PJSIP/[a-z0-9]{3,12}_[0-9]{2,6}$'),
    penalty     integer NOT NULL DEFAULT 0 CHECK (penalty BETWEEN 0 AND 100),
    paused      integer NOT NULL DEFAULT 0,
    queue_name  text GENERATED ALWAYS AS ('q-' || queue_id::text) STORED,
    UNIQUE (queue_id, number)
);
CREATE INDEX call_queue_members_queue_name ON call_queue_members (queue_name);

-- What app_queue reads through res_config_pgsql (extconfig: queues, queue_members). Views:
-- the API's tables stay the one truth, and Asterisk sees a change at the next Queue()
-- (realtime queues and their members are re-read on every call into the queue).
-- Availability: Asterisk does not track the device state of realtime PJSIP endpoints (they are
-- never loaded whole, provisioning/realtime_conf.py): PJSIP/<endpoint> reads Unavailable even
-- when registered, and app_queue would ring nobody. So a member's state_interface is a Custom
-- device state nobody sets (Unknown: available to app_queue), and a member without a live
-- registration in ps_contacts is paused: app_queue re-reads members at every Queue(), so a
-- phone that registers is offered calls from the next caller on. A member busy on a queue call
-- is not rung again (ringinuse = no: app_queue's own pending/in-call bookkeeping).
CREATE VIEW queues AS
SELECT q.asterisk_name AS name, q.strategy, q.ring_seconds AS timeout, 2 AS retry,
       q.max_callers AS maxlen, q.moh_class AS musiconhold,
       CASE WHEN q.announce_position THEN 'yes' ELSE 'no' END AS announce_position,
       CASE WHEN q.announce_position THEN 30 ELSE 0 END AS announce_frequency,
       'yes' AS joinempty, 'no' AS leavewhenempty, 'no' AS ringinuse, 0 AS wrapuptime,
       'yes' AS setinterfacevar, 'yes' AS setqueuevar
  FROM call_queues q;

CREATE VIEW queue_members AS
SELECT m.uniqueid, m.queue_name, m.interface, m.number AS membername,
       'Custom:cp-' || substr(m.interface, 7) AS state_interface, m.penalty,
       CASE WHEN m.paused <> 0 OR NOT EXISTS (
                SELECT 1 FROM ps_contacts c
                 WHERE c.endpoint = substr(m.interface, 7)
                   AND c.expiration_time > extract(epoch FROM now()))
            THEN 1 ELSE 0 END AS paused
  FROM call_queue_members m;

-- Queue statistics, from the AMI events (QueueCallerJoin / AgentConnect / QueueCallerAbandon /
-- QueueCallerLeave): one row per caller that entered a queue, keyed by its channel's uniqueid.
CREATE TABLE queue_calls (
    queue_id      uuid NOT NULL REFERENCES call_queues (id) ON DELETE CASCADE,
    uniqueid      text NOT NULL,
    tenant_id     text NOT NULL,
    caller        text NOT NULL DEFAULT '',
    joined_at     timestamptz NOT NULL,
    answered_at   timestamptz,
    answered_by   text,
    abandoned_at  timestamptz,
    left_at       timestamptz,
    PRIMARY KEY (queue_id, uniqueid)
);
CREATE INDEX queue_calls_waiting ON queue_calls (queue_id) WHERE left_at IS NULL;

-- ---------------------------------------------------------------- music on hold
-- Uploaded files per tenant (the audio itself lives in the media store, kind "moh").
CREATE TABLE moh_files (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9-]{1,40}$'),
    -- what Asterisk plays (the media store's playback name: a path without extension)
    entry       text NOT NULL CHECK (entry !~ '[;,\[\]\n\r]'),
    bytes       integer NOT NULL,
    seconds     double precision NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- res_musiconhold realtime (extconfig: musiconhold, musiconhold_entry): a tenant with uploaded
-- files has the class moh-<sip_prefix> playing them in playlist mode; without any it is not
-- defined and the tenant's calls use "default".
CREATE VIEW musiconhold AS
SELECT 'moh-' || t.sip_prefix AS name, 'playlist' AS mode, ''::text AS directory,
       ''::text AS application, ''::text AS digit, 'alpha' AS sort, ''::text AS format, 0 AS stamp
  FROM tenants t WHERE EXISTS (SELECT 1 FROM moh_files f WHERE f.tenant_id = t.id);

CREATE VIEW musiconhold_entry AS
SELECT 'moh-' || t.sip_prefix AS name,
       (row_number() OVER (PARTITION BY f.tenant_id ORDER BY f.name))::integer - 1 AS position,
       f.entry
  FROM moh_files f JOIN tenants t ON t.id = f.tenant_id;
