-- The partner's own account (controlplane/account, docs/account.md): status, trial and
-- activation, plan changes, operator price schedule, Enterprise prices, card charges owed to the
-- platform (dues) and the subscription invoices they make.

-- Existing partners keep working: they are ACTIVE.
ALTER TABLE partners ADD COLUMN status text NOT NULL DEFAULT 'ACTIVE'
    CHECK (status IN ('TRIAL', 'ACTIVE', 'SUSPENDED'));
ALTER TABLE partners ADD COLUMN trial_ends_at timestamptz;
ALTER TABLE partners ADD COLUMN activated_at timestamptz;
-- A downgrade waits for the next cycle (seed 003 "Changing your plan").
ALTER TABLE partners ADD COLUMN pending_tier text
    CHECK (pending_tier IN ('STARTER', 'PROFESSIONAL', 'BUSINESS', 'ENTERPRISE'));
ALTER TABLE partners ADD COLUMN pending_tier_from timestamptz;  -- the cycle start it applies at
-- true: the platform invoices the monthly fee itself (comp activation: invoiced Enterprise,
-- migrations); the cycle job charges no card for it. Partners from before 0013 are billed as before
-- (invoiced), and their unit fees start now, prorated: charges are never retroactive.
ALTER TABLE partners ADD COLUMN fee_invoiced boolean NOT NULL DEFAULT false;
UPDATE partners SET activated_at = now(), fee_invoiced = true;
-- New partners start a 14-day trial.
ALTER TABLE partners ALTER COLUMN status SET DEFAULT 'TRIAL';
CREATE INDEX partners_trial_ends ON partners (trial_ends_at) WHERE status = 'TRIAL';
CREATE INDEX partners_active ON partners (id) WHERE status = 'ACTIVE';

-- The trial ends 14 days after creation, whatever path inserts the row.
CREATE FUNCTION partners_trial_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'TRIAL' AND NEW.trial_ends_at IS NULL THEN
        NEW.trial_ends_at := NEW.created_at + interval '14 days';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER partners_trial_end BEFORE INSERT ON partners
    FOR EACH ROW EXECUTE FUNCTION partners_trial_end();

-- Operator-scheduled tier price lists (cdr_ingest.tiers.TierPrices), on top of the seed's table.
-- Money in micro-units; NULL: custom / unlimited, as in TierPrices.
CREATE TABLE account_tier_prices (
    tier                  text NOT NULL CHECK (tier IN ('STARTER', 'PROFESSIONAL', 'BUSINESS')),
    effective_from        timestamptz NOT NULL,
    monthly_fee           bigint NOT NULL CHECK (monthly_fee >= 0),
    max_extensions        integer CHECK (max_extensions >= 0),
    per_extension         bigint NOT NULL CHECK (per_extension >= 0),
    did_local_monthly     bigint NOT NULL CHECK (did_local_monthly >= 0),
    did_toll_free_monthly bigint NOT NULL CHECK (did_toll_free_monthly >= 0),
    local_per_minute      bigint NOT NULL CHECK (local_per_minute >= 0),
    toll_free_per_minute  bigint NOT NULL CHECK (toll_free_per_minute >= 0),
    scheduled_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tier, effective_from)
);

-- An Enterprise partner's contract prices (dated versions too).
CREATE TABLE account_enterprise_prices (
    partner_id            text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    effective_from        timestamptz NOT NULL,
    monthly_fee           bigint NOT NULL CHECK (monthly_fee >= 0),
    max_extensions        integer CHECK (max_extensions >= 0),
    per_extension         bigint NOT NULL CHECK (per_extension >= 0),
    did_local_monthly     bigint NOT NULL CHECK (did_local_monthly >= 0),
    did_toll_free_monthly bigint NOT NULL CHECK (did_toll_free_monthly >= 0),
    local_per_minute      bigint NOT NULL CHECK (local_per_minute >= 0),
    toll_free_per_minute  bigint NOT NULL CHECK (toll_free_per_minute >= 0),
    set_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, effective_from)
);

-- A card charge the partner owes the platform (activation, a month's fee, an upgrade), one
-- row per purpose. Each attempt charges with its own reference (payments.charges is idempotent
-- by it): an attempt whose outcome was never recorded (killed half-way) is retried with the same
-- reference, so a payment that went through is found, never made twice; a declined one is
-- retried later with the next reference.
CREATE TABLE account_dues (
    partner_id        text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    reference         text NOT NULL,
    purpose           text NOT NULL CHECK (purpose IN ('activation', 'monthly', 'upgrade')),
    cycle             text NOT NULL,
    amount_micros     bigint NOT NULL CHECK (amount_micros >= 0),
    description       text NOT NULL,
    lines             jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'DUE' CHECK (status IN ('DUE', 'PAID')),
    attempts          integer NOT NULL DEFAULT 0,
    attempt_reference text,
    attempt_open      boolean NOT NULL DEFAULT false,
    last_attempt_at   timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (partner_id, reference)
);
CREATE INDEX account_dues_due ON account_dues (purpose, status) WHERE status = 'DUE';

CREATE SEQUENCE subscription_invoice_seq;

CREATE TABLE subscription_invoices (
    id                 text PRIMARY KEY,
    number             text NOT NULL UNIQUE,
    partner_id         text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    reference          text NOT NULL,
    purpose            text NOT NULL,
    cycle              text NOT NULL,
    tier               text NOT NULL,
    amount_micros      bigint NOT NULL,
    currency           text NOT NULL,
    lines              jsonb NOT NULL,
    charge_reference   text NOT NULL,
    provider_charge_id text,
    issued_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (partner_id, reference)
);
CREATE INDEX subscription_invoices_partner ON subscription_invoices (partner_id, issued_at, id);
