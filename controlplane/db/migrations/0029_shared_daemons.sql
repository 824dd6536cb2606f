-- Daemons that share one database (issue 19, docs/scale.md "Daemons").

-- Leases: a once-only job runs in the daemon holding its row; a node's heartbeat is the row
-- "node:<id>". Times are the database's clock only, so daemons' clocks never disagree.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    node_id     text NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Which node a row was written by: each daemon's connections carry the session setting
-- controlplane.node_id (controlplane.db.database.create_pool), so no writer passes it.
CREATE FUNCTION controlplane_node() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('controlplane.node_id', true), ''), 'local') $$;

ALTER TABLE calls_active ADD COLUMN node_id text NOT NULL DEFAULT controlplane_node();
CREATE INDEX calls_active_node ON calls_active (node_id);
ALTER TABLE call_records ADD COLUMN node_id text NOT NULL DEFAULT controlplane_node();

-- Admission's reservations by node: a partner's wallet holds are counted across the nodes
-- (controlplane.limits.shared_wallet).
ALTER TABLE limit_reservations ADD COLUMN node_id text NOT NULL DEFAULT controlplane_node();

-- Calls recorded by a surviving daemon for a node that died (controlplane.calls.failover):
-- the flag beside the record, and the time of death they were ended at.
CREATE TABLE failover_records (
    linkedid    text PRIMARY KEY,
    node_id     text NOT NULL,
    died_at     timestamptz NOT NULL,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- A change that concerns one node, whichever daemon took the request (controlplane.db.node_bus).
-- The row is written in the sender's transaction, with NOTIFY node_<id>; the node's daemon
-- claims its rows when notified and each time its LISTEN is (re)established.
CREATE TABLE node_commands (
    id         bigserial PRIMARY KEY,
    node_id    text NOT NULL,
    kind       text NOT NULL,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz
);
CREATE INDEX node_commands_pending ON node_commands (node_id, id) WHERE done_at IS NULL;

-- API rate limits shared by every daemon (controlplane.http.ratelimit.SharedRateLimiter).
-- UNLOGGED: a bucket is worth nothing after a crash (it refills within a minute anyway).
CREATE UNLOGGED TABLE rate_buckets (
    name     text PRIMARY KEY,
    capacity double precision NOT NULL,
    tokens   double precision NOT NULL,
    stamp    timestamptz NOT NULL
);

-- One request: refill both buckets (the key's, then its partner's: one lock order), take a token
-- from each when both have one. Returns (allowed, which bucket refused, tokens left, retry after).
CREATE FUNCTION rate_take(key_name text, key_limit integer, partner_name text, partner_limit integer,
                          OUT allowed boolean, OUT which text, OUT remaining integer, OUT retry_after integer)
LANGUAGE plpgsql AS $$
DECLARE
    k double precision;
    p double precision;
BEGIN
    INSERT INTO rate_buckets AS b (name, capacity, tokens, stamp) VALUES (key_name, key_limit, key_limit, now())
    ON CONFLICT (name) DO UPDATE SET
        tokens = CASE WHEN b.capacity <> excluded.capacity THEN excluded.capacity
                      ELSE least(b.capacity, b.tokens
                                 + extract(epoch FROM now() - b.stamp) * b.capacity / 60.0) END,
        capacity = excluded.capacity, stamp = now()
    RETURNING tokens INTO k;
    INSERT INTO rate_buckets AS b (name, capacity, tokens, stamp)
    VALUES (partner_name, partner_limit, partner_limit, now())
    ON CONFLICT (name) DO UPDATE SET
        tokens = CASE WHEN b.capacity <> excluded.capacity THEN excluded.capacity
                      ELSE least(b.capacity, b.tokens
                                 + extract(epoch FROM now() - b.stamp) * b.capacity / 60.0) END,
        capacity = excluded.capacity, stamp = now()
    RETURNING tokens INTO p;
    IF k < 1 THEN
        allowed := false; which := 'key'; remaining := 0;
        retry_after := greatest(1, ceil((1 - k) * 60.0 / key_limit));
    ELSIF p < 1 THEN
        allowed := false; which := 'partner'; remaining := 0;
        retry_after := greatest(1, ceil((1 - p) * 60.0 / partner_limit));
    ELSE
        UPDATE rate_buckets SET tokens = tokens - 1 WHERE name IN (key_name, partner_name);
        allowed := true; which := ''; remaining := floor(k - 1); retry_after := 0;
    END IF;
END $$;
