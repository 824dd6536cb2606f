-- Billing profiles as the partner's templates (seed 003 "Billing profiles", Appendix A),
-- effective-dated tenant assignments, per-tenant rate overrides, the default profile in
-- tenant defaults, and the billing anchor day of limits made an explicit override.
-- Money in micro-units. Owner: controlplane/profiles (docs/profiles.md).

-- Yesterday's per-tenant profile row becomes the tenant's rate overrides on top of its
-- assigned profile: every column optional (NULL = the profile's value). Existing rows keep
-- their values, so existing tenants are priced exactly as before.
ALTER TABLE billing_profiles RENAME TO tenant_rate_overrides;
ALTER TABLE tenant_rate_overrides RENAME CONSTRAINT billing_profiles_pkey TO tenant_rate_overrides_pkey;
ALTER TABLE tenant_rate_overrides
    ALTER per_minute DROP NOT NULL,
    ALTER connect_fee DROP NOT NULL, ALTER connect_fee DROP DEFAULT,
    ALTER min_seconds DROP NOT NULL, ALTER min_seconds DROP DEFAULT,
    ALTER increment_seconds DROP NOT NULL, ALTER increment_seconds DROP DEFAULT,
    ALTER rounding DROP NOT NULL, ALTER rounding DROP DEFAULT,
    ALTER charge_inbound DROP NOT NULL, ALTER charge_inbound DROP DEFAULT;

CREATE TABLE billing_profiles (
    id                              text PRIMARY KEY,
    partner_id                      text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    name                            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    model                           text NOT NULL CHECK (model IN ('PAYG', 'FLAT')),
    base_fee_micros                 bigint NOT NULL CHECK (base_fee_micros >= 0),
    included_extensions             integer NOT NULL CHECK (included_extensions >= 0),
    included_dids                   integer NOT NULL CHECK (included_dids >= 0),
    included_minutes                integer NOT NULL CHECK (included_minutes >= 0),
    extension_micros                bigint NOT NULL CHECK (extension_micros >= 0),
    did_local_micros                bigint NOT NULL CHECK (did_local_micros >= 0),
    did_toll_free_micros            bigint NOT NULL CHECK (did_toll_free_micros >= 0),
    per_minute_micros               bigint NOT NULL CHECK (per_minute_micros >= 0),
    local_per_minute_micros         bigint CHECK (local_per_minute_micros >= 0),
    toll_free_per_minute_micros     bigint CHECK (toll_free_per_minute_micros >= 0),
    international_per_minute_micros bigint CHECK (international_per_minute_micros >= 0),
    connect_fee_micros              bigint NOT NULL CHECK (connect_fee_micros >= 0),
    min_seconds                     integer NOT NULL CHECK (min_seconds >= 0),
    increment_seconds               integer NOT NULL CHECK (increment_seconds >= 1),
    rounding                        text NOT NULL CHECK (rounding IN ('up', 'down', 'half_up')),
    charge_inbound                  boolean NOT NULL,
    trial_days                      integer CHECK (trial_days >= 1),
    then_profile_id                 text REFERENCES billing_profiles (id),
    overdue_after_days              integer NOT NULL CHECK (overdue_after_days >= 0),
    suspend_after_days              integer CHECK (suspend_after_days >= 0),
    net_terms_days                  integer NOT NULL CHECK (net_terms_days >= 0),
    -- 'payg' / 'flat' for the two made with the partner (the fallback default), else NULL.
    builtin                         text CHECK (builtin IN ('payg', 'flat')),
    -- Deleted profiles stay for the history of the assignments that named them.
    deleted_at                      timestamptz,
    created_at                      timestamptz NOT NULL DEFAULT now(),
    updated_at                      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX billing_profiles_partner_name ON billing_profiles (partner_id, lower(name))
    WHERE deleted_at IS NULL;
CREATE INDEX billing_profiles_partner ON billing_profiles (partner_id, created_at, id);

-- Which profile prices a tenant from when: a switch is a row effective at the tenant's
-- next period start; a trial's end is a row at created + trial_days.
CREATE TABLE tenant_profile_assignments (
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    effective_from timestamptz NOT NULL,
    profile_id     text NOT NULL REFERENCES billing_profiles (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, effective_from)
);
CREATE INDEX tenant_profile_assignments_profile ON tenant_profile_assignments (profile_id);

-- Tenant defaults name the profile new tenants get (seed 003 "Tenant defaults").
ALTER TABLE tenant_defaults ADD COLUMN billing_profile_id text REFERENCES billing_profiles (id) ON DELETE SET NULL;

-- The two profiles every partner starts with (seed 003: "Pay-As-You-Go and Flat Rate
-- Starter profiles are created automatically"), figures from Appendix A. The one owner of
-- these figures: the partner_created handler calls it, and so does this migration.
CREATE FUNCTION billing_profiles_create_defaults(p_partner text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM billing_profiles WHERE partner_id = p_partner AND builtin IS NOT NULL) THEN
        RETURN;  -- idempotent: a replayed creation or the migration after the handler
    END IF;
    -- PAYG: $15/extension, $3/local DID, $6/toll-free DID, $0.025/min, no minimum.
    INSERT INTO billing_profiles (id, partner_id, name, model, base_fee_micros, included_extensions,
        included_dids, included_minutes, extension_micros, did_local_micros, did_toll_free_micros,
        per_minute_micros, connect_fee_micros, min_seconds, increment_seconds, rounding, charge_inbound,
        overdue_after_days, suspend_after_days, net_terms_days, builtin)
    VALUES ('bpr_' || substr(md5(gen_random_uuid()::text), 1, 16), p_partner, 'Pay-As-You-Go', 'PAYG',
            0, 0, 0, 0, 15000000, 3000000, 6000000, 25000, 0, 6, 6, 'half_up', true, 7, 14, 15, 'payg');
    -- Flat Rate Starter: $99/mo with 5 extensions, 2 DIDs, 500 minutes; over: $20, $4, $0.025.
    INSERT INTO billing_profiles (id, partner_id, name, model, base_fee_micros, included_extensions,
        included_dids, included_minutes, extension_micros, did_local_micros, did_toll_free_micros,
        per_minute_micros, connect_fee_micros, min_seconds, increment_seconds, rounding, charge_inbound,
        overdue_after_days, suspend_after_days, net_terms_days, builtin)
    VALUES ('bpr_' || substr(md5(gen_random_uuid()::text), 1, 16), p_partner, 'Flat Rate Starter', 'FLAT',
            99000000, 5, 2, 500, 20000000, 4000000, 8000000, 25000, 0, 6, 6, 'half_up', true, 7, 14, 15,
            'flat');
END $$;

SELECT billing_profiles_create_defaults(id) FROM partners;

-- A new tenant gets its partner's default profile (tenant defaults, else Pay-As-You-Go) in
-- its own transaction, like its limits: no code path can forget it. A profile with a
-- trial moves the tenant to its then-profile at the tenant's local midnight trial_days
-- after its creation day (a period starts at a local midnight: periods are named by day).
CREATE FUNCTION tenant_profile_prefill() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chosen billing_profiles%ROWTYPE;
BEGIN
    SELECT b.* INTO chosen FROM billing_profiles b
     WHERE b.partner_id = NEW.partner_id AND b.deleted_at IS NULL
       AND (b.id = (SELECT d.billing_profile_id FROM tenant_defaults d WHERE d.partner_id = NEW.partner_id)
            OR b.builtin = 'payg')
     ORDER BY (b.builtin = 'payg') NULLS FIRST LIMIT 1;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)
    VALUES (NEW.id, NEW.created_at, chosen.id);
    IF chosen.trial_days IS NOT NULL AND chosen.then_profile_id IS NOT NULL THEN
        INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)
        VALUES (NEW.id, (date_trunc('day', NEW.created_at AT TIME ZONE NEW.timezone)
                         + make_interval(days => chosen.trial_days)) AT TIME ZONE NEW.timezone,
                chosen.then_profile_id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_profile_prefill AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenant_profile_prefill();

-- Existing tenants: their partner's Pay-As-You-Go from their creation (their calls were
-- priced per minute with nothing included, which is what PAYG is).
INSERT INTO tenant_profile_assignments (tenant_id, effective_from, profile_id)
SELECT t.id, t.created_at, b.id FROM tenants t
  JOIN billing_profiles b ON b.partner_id = t.partner_id AND b.builtin = 'payg';

-- The billing period follows the profile (PAYG: calendar month; Flat: the anniversary of
-- the tenant's creation). limits' anchor day becomes an explicit override, NULL = the rule;
-- 1 was the default and is the PAYG rule, so those rows change nothing by going NULL.
ALTER TABLE tenant_limits ALTER billing_anchor_day DROP NOT NULL, ALTER billing_anchor_day DROP DEFAULT;
ALTER TABLE limit_defaults ALTER billing_anchor_day DROP NOT NULL, ALTER billing_anchor_day DROP DEFAULT;
UPDATE tenant_limits SET billing_anchor_day = NULL WHERE billing_anchor_day = 1;
UPDATE limit_defaults SET billing_anchor_day = NULL WHERE billing_anchor_day = 1;
