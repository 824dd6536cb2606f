-- Collection (docs/collection.md): the partner's Stripe mode, its tenants' customers and cards
-- at that account, the charges of tenant invoices, the payments recorded against invoices
-- (card or manual) and the refunds as numbered credit notes.
-- invoice_id columns name controlplane/invoices' rows; no foreign key, so this capability's
-- tables do not depend on the invoice table's shape.

CREATE TABLE collection_modes (
    partner_id          text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    mode                text NOT NULL CHECK (mode IN ('platform', 'connect', 'custom_keys')),
    connect_account_id  text CHECK (connect_account_id ~ '^acct_[A-Za-z0-9]{1,64}$'),
    -- The partner's secret key, AES-256-GCM (controlplane.secret_box; the partner id is the
    -- associated data). Never returned: only its last 4 characters are shown.
    secret_key_sealed   bytea,
    secret_key_last4    text,
    publishable_key     text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((mode = 'connect') = (connect_account_id IS NOT NULL)),
    CHECK ((mode = 'custom_keys') = (secret_key_sealed IS NOT NULL))
);

-- A tenant's customer at one Stripe account ("platform", "connect:acct_...", "custom:<key
-- fingerprint>"): switching mode leaves the cards saved at the old account unused.
CREATE TABLE collection_customers (
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account      text NOT NULL,
    partner_id   text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    customer_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account)
);

CREATE TABLE collection_methods (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    account     text NOT NULL,
    brand       text NOT NULL,
    last4       text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month   integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year    integer NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX collection_methods_tenant ON collection_methods (tenant_id, account, created_at);
CREATE UNIQUE INDEX collection_methods_one_default ON collection_methods (tenant_id, account) WHERE is_default;

-- One row per (partner, reference = "invoice:<id>:<attempt>"): PENDING is committed before the
-- provider hears of the charge, so a crash leaves a row completed later with the same key.
-- recorded_at: the payment was applied to the invoice (a success not yet recorded is
-- recorded by the next collect() of the invoice or by the sweeper).
CREATE TABLE collection_charges (
    id                      text PRIMARY KEY,
    partner_id              text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id               text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    invoice_id              text NOT NULL,
    attempt                 integer NOT NULL CHECK (attempt >= 1),
    reference               text NOT NULL,
    mode                    text NOT NULL,
    account                 text NOT NULL,
    amount_micros           bigint NOT NULL CHECK (amount_micros > 0 AND amount_micros % 10000 = 0),
    application_fee_micros  bigint NOT NULL DEFAULT 0 CHECK (application_fee_micros >= 0),
    currency                text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                  text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'DECLINED')),
    customer_id             text NOT NULL,
    method_id               text NOT NULL,
    provider_charge_id      text,
    decline_code            text,
    decline_message         text,
    recorded_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (partner_id, reference)
);
CREATE INDEX collection_charges_invoice ON collection_charges (invoice_id, attempt);
CREATE INDEX collection_charges_open ON collection_charges (updated_at)
    WHERE status = 'PENDING' OR (status = 'SUCCEEDED' AND recorded_at IS NULL);

-- Every payment applied to an invoice: a card charge (source 'card', charge_id) or one the
-- partner recorded by hand ('manual'). fee_micros: the platform's 3.99% (platform and connect
-- modes); settlement of platform mode owes the partner amount - fee.
CREATE TABLE collection_payments (
    id                  text PRIMARY KEY,
    partner_id          text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id           text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    invoice_id          text NOT NULL,
    reference           text NOT NULL,
    source              text NOT NULL CHECK (source IN ('card', 'manual')),
    mode                text,
    charge_id           text REFERENCES collection_charges (id),
    amount_micros       bigint NOT NULL CHECK (amount_micros > 0),
    fee_micros          bigint NOT NULL DEFAULT 0 CHECK (fee_micros >= 0),
    currency            text NOT NULL,
    note                text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (partner_id, reference)
);
CREATE INDEX collection_payments_invoice ON collection_payments (invoice_id, created_at);

-- Gapless credit note numbers per partner: the counter row is locked while a number is taken,
-- in the transaction that records the refund, so a failed refund takes no number.
CREATE TABLE credit_note_counters (
    partner_id  text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    prefix      text NOT NULL DEFAULT 'CN-',
    last_seq    integer NOT NULL DEFAULT 0
);

-- A refund: PENDING (counted against what was paid, so two refunds at once cannot exceed
-- it) -> SUCCEEDED (numbered credit note) | FAILED (the provider refused; no number).
CREATE TABLE credit_notes (
    id                  text PRIMARY KEY,
    partner_id          text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id           text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    invoice_id          text NOT NULL,
    reference           text NOT NULL,
    status              text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    seq                 integer,
    number              text,
    amount_micros       bigint NOT NULL CHECK (amount_micros > 0 AND amount_micros % 10000 = 0),
    usage_credit_micros bigint NOT NULL DEFAULT 0 CHECK (usage_credit_micros >= 0),
    currency            text NOT NULL,
    reason              text,
    failure             text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    issued_at           timestamptz,
    UNIQUE (partner_id, reference),
    UNIQUE (partner_id, seq),
    CHECK ((status = 'SUCCEEDED') = (number IS NOT NULL))
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, created_at);

-- How a refund is spread over the invoice's payments: a card payment's part is refunded at the
-- provider (provider_refund_id), a manual payment's part is returned by the partner itself.
CREATE TABLE credit_note_allocations (
    credit_note_id      text NOT NULL REFERENCES credit_notes (id) ON DELETE CASCADE,
    payment_id          text NOT NULL REFERENCES collection_payments (id),
    amount_micros       bigint NOT NULL CHECK (amount_micros > 0),
    fee_micros          bigint NOT NULL DEFAULT 0,
    provider_refund_id  text,
    PRIMARY KEY (credit_note_id, payment_id)
);
