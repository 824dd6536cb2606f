-- The public API: partner API keys, idempotency records, the audit log.

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    partner_id   text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- SHA-256 of the whole key (256 random bits): the plaintext is never stored.
    secret_hash  bytea NOT NULL UNIQUE,
    last4        text NOT NULL,
    scopes       text[] NOT NULL,
    -- NULL: every tenant of the partner.
    tenant_ids   text[],
    rate_limit   integer NOT NULL DEFAULT 100 CHECK (rate_limit BETWEEN 1 AND 10000),
    revoked_at   timestamptz,
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_keys_partner_created ON api_keys (partner_id, created_at, id);

-- A POST's first outcome, replayed to retries carrying the same Idempotency-Key.
-- status IS NULL while the first request is still running.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- No foreign keys: entries outlive the keys, tenants and partners they name.
CREATE TABLE audit_events (
    id           text PRIMARY KEY,
    partner_id   text,
    tenant_id    text,
    actor_type   text NOT NULL CHECK (actor_type IN ('service', 'api_key', 'system')),
    api_key_id   text,
    user_id      text,
    action       text NOT NULL,
    resource     text NOT NULL,
    resource_id  text NOT NULL,
    changes      jsonb NOT NULL DEFAULT '{}',
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_events_partner_created ON audit_events (partner_id, created_at, id);
CREATE INDEX audit_events_resource ON audit_events (resource_id);
