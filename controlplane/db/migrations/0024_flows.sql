-- Call flows (controlplane/flows, docs/flows.md): the references between a tenant's call-flow
-- objects, IVR menus, time conditions, DID routes and the tenant's unassigned-DID behaviour.

-- What points where: one row per destination field of an owner (an IVR option, a ring group's
-- no-answer destination, a DID's route, ...). Kinds and refs are provisioning.destinations'
-- (validated there); a delete asks for the rows whose target is the object (409 when any).
CREATE TABLE flow_references (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    owner_kind  text NOT NULL,
    owner_ref   text NOT NULL,
    field       text NOT NULL,
    target_kind text NOT NULL,
    target_ref  text NOT NULL,
    PRIMARY KEY (tenant_id, owner_kind, owner_ref, field)
);
CREATE INDEX flow_references_target ON flow_references (tenant_id, target_kind, target_ref);

CREATE TABLE ivr_menus (
    id                 text PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    -- 'builtin': prompt_ref names a sound shipped with Asterisk (provisioning.flows allow-list);
    -- 'upload': the media store holds it (MediaKey(tenant, prompt, prompt_ref)).
    prompt_kind        text NOT NULL CHECK (prompt_kind IN ('builtin', 'upload')),
    prompt_ref         text NOT NULL CHECK (prompt_ref ~ '^[0-9a-z][0-9a-z/_-]{0,79}$'),
    timeout_seconds    integer NOT NULL CHECK (timeout_seconds BETWEEN 1 AND 30),
    max_attempts       integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 10),
    dial_by_extension  boolean NOT NULL DEFAULT false,
    -- {"digit": {"kind":..., "ref":...}}, plus "timeout"/"invalid" destinations; the same
    -- targets are in flow_references (that table answers "who uses X").
    options            jsonb NOT NULL DEFAULT '{}',
    timeout_kind       text NOT NULL,
    timeout_ref        text NOT NULL DEFAULT '',
    invalid_kind       text NOT NULL,
    invalid_ref        text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ivr_menus_tenant ON ivr_menus (tenant_id, created_at, id);

CREATE TABLE time_conditions (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    -- [{"days": ["mon",...], "start": "09:00", "end": "17:00"}] in the tenant's time zone
    hours        jsonb NOT NULL DEFAULT '[]',
    -- ["2026-12-25", ...]: closed all day (tenant's time zone)
    holidays     jsonb NOT NULL DEFAULT '[]',
    override     text NOT NULL DEFAULT 'none' CHECK (override IN ('none', 'open', 'closed')),
    open_kind    text NOT NULL,
    open_ref     text NOT NULL DEFAULT '',
    closed_kind  text NOT NULL,
    closed_ref   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX time_conditions_tenant ON time_conditions (tenant_id, created_at, id);

-- A DID's destination (none: the tenant's unassigned-DID behaviour; a DID still assigned to an
-- extension through dids.extension_id rings that extension).
CREATE TABLE did_routes (
    did_id      text PRIMARY KEY REFERENCES dids (id) ON DELETE CASCADE,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    target_kind text NOT NULL,
    target_ref  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX did_routes_tenant ON did_routes (tenant_id);

-- The tenant's unassigned-DID behaviour (seed 003); no row: the "not configured" message.
CREATE TABLE tenant_flow_settings (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    unassigned_kind text,
    unassigned_ref  text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
