-- The event outbox and webhook delivery (controlplane/events, controlplane/webhooks).

-- Written by emit() in the caller's transaction, so an event exists iff its change
-- committed. `position` is NULL until the sequencer (one at a time, under an advisory
-- lock) stamps it. It only sees committed rows and only hands out increasing numbers,
-- so an event that commits late still gets a position above every one already visible:
-- a cursor on position never skips anything.
CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE CHECK (id ~ '^evt_[0-9a-f]{24}$'),
    type       text NOT NULL,
    partner_id text NOT NULL,
    tenant_id  text,
    created_at timestamptz NOT NULL,
    -- The exact envelope sent to endpoints (JSON, UTF-8): same bytes on every retry.
    body       bytea NOT NULL,
    position   bigint UNIQUE
);
CREATE INDEX events_unsequenced ON events (seq) WHERE position IS NULL;
CREATE INDEX events_partner_position ON events (partner_id, position) WHERE position IS NOT NULL;
CREATE INDEX events_partner_created ON events (partner_id, created_at);

CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Delivered at commit, once per transaction: wakes the webhook dispatcher.
    PERFORM pg_notify('controlplane_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

CREATE TABLE webhook_endpoints (
    id                   text PRIMARY KEY,
    partner_id           text NOT NULL,
    url                  text NOT NULL,
    description          text NOT NULL DEFAULT '',
    -- Registry names, or the single entry '*' for every type.
    event_types          text[] NOT NULL CHECK (cardinality(event_types) > 0),
    enabled              boolean NOT NULL DEFAULT true,
    disabled_reason      text CHECK (disabled_reason IN ('manual', 'consecutive_failures')),
    -- AES-GCM(nonce || ciphertext) of the whsec_ secret, bound to the endpoint id.
    secret_enc           bytea NOT NULL,
    consecutive_failures integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- Deleted endpoints stay for their delivery history.
    deleted_at           timestamptz
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints (partner_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id),
    event_seq       bigint NOT NULL REFERENCES events (seq),
    position        bigint NOT NULL,
    -- Deliveries of one endpoint with the same key make their first attempts one at
    -- a time, in position order: the tenant id, or '' for partner-level events.
    order_key       text NOT NULL,
    -- PENDING: not attempted yet; FAILED: last attempt failed, next one at due_at.
    status          text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD')),
    -- May be claimed once due: FAILED rows, redeliveries, and the oldest PENDING row
    -- of each (endpoint, order_key) group. Kept so a claim costs what it claims.
    ready           boolean NOT NULL DEFAULT false,
    attempts        smallint NOT NULL DEFAULT 0,
    max_attempts    smallint NOT NULL,
    -- A redelivery asked for through the RPC: one attempt, outside the ordering.
    manual          boolean NOT NULL DEFAULT false,
    due_at          timestamptz NOT NULL,
    lease_until     timestamptz,
    lease_owner     text,
    last_attempt_at timestamptz,
    response_status integer,
    error           text,
    response_body   bytea,
    response_truncated boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CHECK (NOT ready OR status IN ('PENDING', 'FAILED'))
);
CREATE INDEX webhook_deliveries_ready ON webhook_deliveries (endpoint_id, due_at, id) WHERE ready;
CREATE INDEX webhook_deliveries_heads ON webhook_deliveries (endpoint_id, order_key, position)
    WHERE status = 'PENDING' AND NOT manual;
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (endpoint_id, lease_until)
    WHERE lease_until IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
