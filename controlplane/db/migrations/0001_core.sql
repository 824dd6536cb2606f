-- Partners, tenants, extensions and DIDs: the first aggregates. Later migrations extend them.

CREATE TABLE partners (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    tier        text NOT NULL CHECK (tier IN ('STARTER', 'PROFESSIONAL', 'BUSINESS', 'ENTERPRISE')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id            text PRIMARY KEY,
    partner_id    text NOT NULL REFERENCES partners (id),
    name          text NOT NULL,
    -- Namespaces every Asterisk object of the tenant; never changes once set.
    sip_prefix    text NOT NULL UNIQUE CHECK (sip_prefix ~ '^[a-z0-9]{3,12}$'),
    billing_email text NOT NULL,
    default_cnam  text CHECK (char_length(default_cnam) <= 15),
    timezone      text NOT NULL DEFAULT 'UTC',
    status        text NOT NULL CHECK (status IN ('TRIAL', 'ACTIVE', 'SUSPENDED', 'CANCELLED')),
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_partner_created ON tenants (partner_id, created_at, id);

CREATE TABLE extensions (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number            text NOT NULL CHECK (number ~ '^[0-9]{2,6}$'),
    display_name      text NOT NULL,
    -- PJSIP md5_cred, MD5(user:realm:password): Asterisk authenticates with it,
    -- and the plaintext is never stored.
    sip_ha1           text NOT NULL,
    voicemail_enabled boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, number)
);

CREATE TABLE dids (
    id           text PRIMARY KEY,
    partner_id   text NOT NULL REFERENCES partners (id),
    number       text NOT NULL UNIQUE CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    tenant_id    text REFERENCES tenants (id),
    extension_id text REFERENCES extensions (id) ON DELETE SET NULL,
    status       text NOT NULL CHECK (status IN ('ACTIVE', 'PENDING', 'RELEASED')),
    cnam         text CHECK (char_length(cnam) <= 15),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dids_tenant ON dids (tenant_id);
