-- Provisioning: list indexes, tenant defaults, DID release memory, and the
-- PJSIP realtime tables Asterisk reads (res_config_pgsql + res_sorcery_realtime).

CREATE INDEX extensions_tenant_created ON extensions (tenant_id, created_at, id);
CREATE INDEX dids_partner_created ON dids (partner_id, created_at, id);
CREATE INDEX partners_created ON partners (created_at, id);
CREATE INDEX tenants_cancelled ON tenants (cancelled_at) WHERE cancelled_at IS NOT NULL;

-- A cancelled tenant's DIDs go back to the partner's inventory (RELEASED); these
-- remember where they came from so a reactivation within 90 days restores them.
ALTER TABLE dids ADD COLUMN released_from_tenant text REFERENCES tenants (id) ON DELETE SET NULL;
ALTER TABLE dids ADD COLUMN released_extension text REFERENCES extensions (id) ON DELETE SET NULL;

-- Values pre-filled into new tenants of a partner (seed 003, "Tenant defaults").
CREATE TABLE tenant_defaults (
    partner_id   text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    timezone     text,
    default_cnam text CHECK (char_length(default_cnam) <= 15),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- PJSIP realtime. Column names are those Asterisk's sorcery queries; tenant_id is
-- ours (Asterisk ignores fields it does not know) and lets us delete by tenant.
CREATE TABLE ps_endpoints (
    id              varchar(40) PRIMARY KEY,
    tenant_id       text NOT NULL,
    aors            varchar(200),
    auth            varchar(40),
    context         varchar(40),
    callerid        varchar(80),
    accountcode     varchar(80),
    set_var         text,
    disallow        varchar(200),
    allow           varchar(200),
    direct_media    varchar(10),
    rtp_symmetric   varchar(10),
    force_rport     varchar(10),
    rewrite_contact varchar(10),
    identify_by     varchar(80),
    send_pai        varchar(10),
    transport       varchar(40)
);
CREATE INDEX ps_endpoints_tenant ON ps_endpoints (tenant_id);

CREATE TABLE ps_auths (
    id        varchar(40) PRIMARY KEY,
    tenant_id text NOT NULL,
    auth_type varchar(20),
    username  varchar(40),
    md5_cred  varchar(40),
    realm     varchar(40),
    password  varchar(80),
    nonce_lifetime integer
);
CREATE INDEX ps_auths_tenant ON ps_auths (tenant_id);

CREATE TABLE ps_aors (
    id                 varchar(40) PRIMARY KEY,
    tenant_id          text NOT NULL,
    max_contacts       integer,
    remove_existing    varchar(10),
    qualify_frequency  integer,
    default_expiration integer,
    minimum_expiration integer,
    maximum_expiration integer,
    contact            varchar(255),
    mailboxes          varchar(80),
    support_path       varchar(10),
    authenticate_qualify varchar(10),
    outbound_proxy     varchar(255),
    qualify_timeout    double precision
);
CREATE INDEX ps_aors_tenant ON ps_aors (tenant_id);

-- Written by Asterisk's registrar; the column set is the one its INSERT uses.
CREATE TABLE ps_contacts (
    id                   varchar(255) PRIMARY KEY,
    uri                  varchar(511),
    expiration_time      bigint,
    qualify_frequency    integer,
    outbound_proxy       varchar(255),
    path                 text,
    user_agent           varchar(255),
    qualify_timeout      double precision,
    reg_server           varchar(255),
    authenticate_qualify varchar(10),
    via_addr             varchar(40),
    via_port             integer,
    call_id              varchar(255),
    endpoint             varchar(255),
    prune_on_boot        varchar(10),
    qualify_2xx_only     varchar(10),
    outbound_auth        varchar(40)
);
CREATE INDEX ps_contacts_endpoint ON ps_contacts (endpoint);
