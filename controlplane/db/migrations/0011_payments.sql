-- Payments (docs/payments.md): the partner's customer at the provider, its saved payment
-- methods (ids only: card data never reaches us) and every charge made to them.

CREATE TABLE payment_customers (
    partner_id   text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    provider     text NOT NULL,
    customer_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payment_methods (
    id          text PRIMARY KEY,
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    brand       text NOT NULL,
    last4       text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month   integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year    integer NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payment_methods_partner ON payment_methods (partner_id, created_at);
-- At most one default per partner.
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (partner_id) WHERE is_default;

-- One row per (partner, reference): the charge's idempotency. PENDING is written and
-- committed before the provider hears of it, so a crash between the two leaves a row that
-- the next attempt completes with the same idempotency key instead of charging again.
CREATE TABLE payment_charges (
    id                  text PRIMARY KEY,
    partner_id          text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    reference           text NOT NULL,
    amount_micros       bigint NOT NULL CHECK (amount_micros > 0 AND amount_micros % 10000 = 0),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description         text NOT NULL,
    status              text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'DECLINED')),
    -- A declined reference charged again (with another card) is a new attempt, a new key.
    attempt             integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    customer_id         text NOT NULL,
    method_id           text NOT NULL,
    provider_charge_id  text,
    decline_code        text,
    decline_message     text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (partner_id, reference)
);
CREATE INDEX payment_charges_pending ON payment_charges (updated_at) WHERE status = 'PENDING';
