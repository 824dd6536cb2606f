-- Usage limits (seed 003 "Usage Limits & Spending Controls"; seed 002 trunk channels).
-- NULL = unlimited. Money in micro-units.

CREATE TABLE tenant_limits (
    tenant_id            text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    monthly_spend_micros bigint CHECK (monthly_spend_micros >= 0),
    max_extensions       integer CHECK (max_extensions >= 0),
    max_dids             integer CHECK (max_dids >= 0),
    monthly_minutes      integer CHECK (monthly_minutes >= 0),
    max_inbound          integer CHECK (max_inbound >= 0),
    max_outbound         integer CHECK (max_outbound >= 0),
    max_two_way          integer CHECK (max_two_way >= 0),
    alert_threshold_pct  integer NOT NULL DEFAULT 80 CHECK (alert_threshold_pct BETWEEN 1 AND 100),
    auto_suspend         boolean NOT NULL DEFAULT false,
    billing_anchor_day   integer NOT NULL DEFAULT 1 CHECK (billing_anchor_day BETWEEN 1 AND 31),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- A partner's default limits, copied into each new tenant (and by "reset to defaults").
CREATE TABLE limit_defaults (
    partner_id           text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    monthly_spend_micros bigint CHECK (monthly_spend_micros >= 0),
    max_extensions       integer CHECK (max_extensions >= 0),
    max_dids             integer CHECK (max_dids >= 0),
    monthly_minutes      integer CHECK (monthly_minutes >= 0),
    max_inbound          integer CHECK (max_inbound >= 0),
    max_outbound         integer CHECK (max_outbound >= 0),
    max_two_way          integer CHECK (max_two_way >= 0),
    alert_threshold_pct  integer NOT NULL DEFAULT 80 CHECK (alert_threshold_pct BETWEEN 1 AND 100),
    auto_suspend         boolean NOT NULL DEFAULT false,
    billing_anchor_day   integer NOT NULL DEFAULT 1 CHECK (billing_anchor_day BETWEEN 1 AND 31),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Pre-fill at creation, in the tenant's own transaction: no code path can forget it.
CREATE FUNCTION tenant_limits_prefill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_limits (tenant_id, monthly_spend_micros, max_extensions, max_dids, monthly_minutes,
                               max_inbound, max_outbound, max_two_way, alert_threshold_pct, auto_suspend,
                               billing_anchor_day)
    SELECT NEW.id, d.monthly_spend_micros, d.max_extensions, d.max_dids, d.monthly_minutes, d.max_inbound,
           d.max_outbound, d.max_two_way, d.alert_threshold_pct, d.auto_suspend, d.billing_anchor_day
      FROM limit_defaults d WHERE d.partner_id = NEW.partner_id;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_limits_prefill AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenant_limits_prefill();

-- Calls in progress and what they reserved: reloaded after a restart, expired
-- when the daemon missed the call's end.
CREATE TABLE limit_reservations (
    call_id     text PRIMARY KEY,
    tenant_id   text NOT NULL,
    pool        text,
    seconds     integer NOT NULL,
    micros      bigint NOT NULL,
    channel     text NOT NULL DEFAULT '',
    admitted_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX limit_reservations_expires ON limit_reservations (expires_at);

-- One threshold / cap alert per cap per cycle.
CREATE TABLE limit_alerts (
    tenant_id   text NOT NULL,
    cycle_start timestamptz NOT NULL,
    cap         text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('threshold', 'cap')),
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, cycle_start, cap, kind)
);
