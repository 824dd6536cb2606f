-- Nodes behind the Kamailio edge (docs/scale.md, "Topology"): which Asterisk nodes exist,
-- which node each tenant lives on, and the two views Kamailio loads into its hash tables.

CREATE TABLE nodes (
    -- The daemon's config.node.id; also the Kamailio dispatcher set (set_id) of the node.
    id          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{0,31}$'),
    set_id      integer NOT NULL UNIQUE CHECK (set_id BETWEEN 1 AND 999),
    sip_host    text NOT NULL CHECK (sip_host ~ '^[0-9]{1,3}(\.[0-9]{1,3}){3}$'),
    sip_port    integer NOT NULL CHECK (sip_port BETWEEN 1 AND 65535),
    daemon_url  text CHECK (daemon_url ~ '^https?://[A-Za-z0-9.:\-\[\]]+(/[A-Za-z0-9._/\-]*)?$'),
    -- False: no new tenants are pinned here (existing ones stay until moved).
    accepting   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sip_host, sip_port)
);

-- A tenant lives on one node. Absent row: pinned by the nodes plugin's sync (stable hash over
-- the accepting nodes), so adding a node later never moves an existing tenant.
CREATE TABLE tenant_nodes (
    tenant_id    text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    node_id      text NOT NULL REFERENCES nodes (id),
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    moved_from   text REFERENCES nodes (id) ON DELETE SET NULL
);
CREATE INDEX tenant_nodes_node ON tenant_nodes (node_id);

-- Kamailio's htable module reads these (db_postgres; key_type 0 = plain key, value_type
-- 1 = integer). Key: the tenant's SIP prefix / the DID in E.164; value: the dispatcher set.
CREATE VIEW kamailio_tenant_routes AS
    SELECT t.sip_prefix AS key_name, 0 AS key_type, 1 AS value_type,
           n.set_id::text AS key_value, 0 AS expires
      FROM tenant_nodes tn JOIN tenants t ON t.id = tn.tenant_id JOIN nodes n ON n.id = tn.node_id;

CREATE VIEW kamailio_did_routes AS
    SELECT d.number AS key_name, 0 AS key_type, 1 AS value_type,
           n.set_id::text AS key_value, 0 AS expires
      FROM dids d JOIN tenant_nodes tn ON tn.tenant_id = d.tenant_id JOIN nodes n ON n.id = tn.node_id
     WHERE d.status = 'ACTIVE';

-- Phones register through Kamailio, which adds a Path header: Asterisk must keep it to reach
-- the phone back through the edge (harmless without an edge: no Path, nothing stored).
ALTER TABLE ps_aors ALTER COLUMN support_path SET DEFAULT 'yes';
UPDATE ps_aors SET support_path = 'yes' WHERE support_path IS NULL;

-- Which node carried a call: call_records.node_id / calls_active.node_id come with 0029 (M).

-- Behind the edge, Kamailio is what phones talk to: Asterisk must keep the Contact a phone sent
-- (its REGISTER arrives from Kamailio's address; rewriting would point every phone at the edge
-- and lose it). NAT is the edge's job there (Path with received=). Once any node is registered
-- (multi-node mode), every phone endpoint is written with rewrite_contact = no; the nodes store
-- turns existing rows when the first node appears.
CREATE FUNCTION edge_endpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM nodes) THEN
        NEW.rewrite_contact := 'no';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ps_endpoints_edge BEFORE INSERT OR UPDATE ON ps_endpoints
    FOR EACH ROW EXECUTE FUNCTION edge_endpoint();
