-- Numbers: the carrier inventory (from operator files), purchase pricing, CNAM and
-- E911 state of DIDs, and port-in requests. The per-tenant DID limit is tenant_limits.max_dids (0008).
-- The partner wallet (partner_wallets, wallet_entries) comes from 0005_calls.

-- Numbers a carrier offers; sold_to is NULL while available. Numbers sort as
-- (npa, nxx, line), so the partial indexes below serve "filter, then first N".
CREATE TABLE number_inventory (
    number      text PRIMARY KEY CHECK (number ~ '^\+1[2-9][0-9]{9}$'),
    kind        text NOT NULL CHECK (kind IN ('local', 'toll_free')),
    state       text,
    city        text,
    city_key    text,
    rate_center text,
    npa         text NOT NULL,
    nxx         text NOT NULL,
    carrier     text NOT NULL DEFAULT 'builtin',
    sold_to     text REFERENCES partners (id),
    sold_at     timestamptz,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX number_inventory_local ON number_inventory (state, npa, nxx, number)
    WHERE sold_to IS NULL AND kind = 'local';
CREATE INDEX number_inventory_city ON number_inventory (state, city_key, npa, nxx, number)
    WHERE sold_to IS NULL AND kind = 'local';
CREATE INDEX number_inventory_rate_center ON number_inventory (state, rate_center, npa, nxx, number)
    WHERE sold_to IS NULL AND kind = 'local';
-- Vanity patterns become LIKE '+1877555____': a prefix range scan.
CREATE INDEX number_inventory_toll_free ON number_inventory (number text_pattern_ops)
    WHERE sold_to IS NULL AND kind = 'toll_free';

ALTER TABLE dids ADD COLUMN kind text NOT NULL DEFAULT 'local' CHECK (kind IN ('local', 'toll_free'));
ALTER TABLE dids ADD COLUMN region text;
ALTER TABLE dids ADD COLUMN rate_center text;
-- Recorded at purchase from the partner's tier; NULL: custom (Enterprise) or not bought here.
ALTER TABLE dids ADD COLUMN monthly_micros bigint CHECK (monthly_micros >= 0);
ALTER TABLE dids ADD COLUMN setup_micros bigint CHECK (setup_micros >= 0);
-- The monthly charge runs from here; NULL once released (the charge stops).
ALTER TABLE dids ADD COLUMN billing_since timestamptz;
ALTER TABLE dids ADD COLUMN cnam_status text NOT NULL DEFAULT 'NONE'
    CHECK (cnam_status IN ('NONE', 'PENDING', 'SYNCED', 'FAILED'));
ALTER TABLE dids ADD COLUMN cnam_error text;
ALTER TABLE dids ADD COLUMN e911_status text NOT NULL DEFAULT 'NOT_SET'
    CHECK (e911_status IN ('NOT_SET', 'PENDING', 'REGISTERED', 'FAILED'));
ALTER TABLE dids ADD COLUMN e911_address jsonb;
ALTER TABLE dids ADD COLUMN e911_error text;
ALTER TABLE dids ADD COLUMN e911_updated_at timestamptz;
CREATE INDEX dids_partner_e911 ON dids (partner_id, e911_status, number);
CREATE INDEX dids_partner_number ON dids (partner_id, number);

CREATE TABLE port_requests (
    id              text PRIMARY KEY,
    partner_id      text NOT NULL REFERENCES partners (id),
    tenant_id       text NOT NULL REFERENCES tenants (id),
    numbers         text[] NOT NULL,
    losing_carrier  text NOT NULL,
    account_holder  text NOT NULL,
    account_number  text NOT NULL,
    -- AES-256-GCM (controlplane.webhooks.secret_box), the port id as associated data.
    pin_sealed      bytea,
    service_address jsonb NOT NULL,
    desired_date    date,
    foc_date        date,
    status          text NOT NULL CHECK (status IN ('PENDING', 'SUBMITTED', 'FOC_RECEIVED', 'COMPLETED',
                                                    'REJECTED', 'CANCELLED')),
    reject_reason   text,
    carrier_ref     text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX port_requests_partner_created ON port_requests (partner_id, created_at, id);

CREATE TABLE port_documents (
    id           text PRIMARY KEY,
    port_id      text NOT NULL REFERENCES port_requests (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('LOA', 'BILL')),
    filename     text NOT NULL,
    content_type text NOT NULL,
    size         integer NOT NULL CHECK (size > 0),
    sha256       bytea NOT NULL,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX port_documents_port ON port_documents (port_id);
