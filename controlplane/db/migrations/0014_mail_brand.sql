-- The partner's company, brand and notification preferences (controlplane/brand) and the
-- email outbox with its notifier cursor (controlplane/mail).

-- One row per partner that changed a setting; a partner without a row has every default
-- (company name = partners.name, brand name = company name, toggles as below).
CREATE TABLE partner_brand (
    partner_id           text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    company_name         text CHECK (char_length(company_name) BETWEEN 1 AND 200),
    billing_email        text CHECK (char_length(billing_email) <= 254),
    brand_name           text CHECK (char_length(brand_name) BETWEEN 1 AND 100),
    primary_color        text CHECK (primary_color ~ '^#[0-9a-f]{6}$'),
    from_email           text CHECK (char_length(from_email) <= 254),
    support_email        text CHECK (char_length(support_email) <= 254),
    -- Stripe's rules and the seed's: 5-22 of letters, digits, space, '-', '&', one letter at least.
    statement_descriptor text CHECK (statement_descriptor ~ '^[A-Za-z0-9 &-]{5,22}$'
                                     AND statement_descriptor ~ '[A-Za-z]'),
    -- Seed 003 "Account Settings & Team": usage alerts and monthly reports "recommended: ON".
    notify_new_tenant_signups boolean NOT NULL DEFAULT false,
    notify_usage_alerts       boolean NOT NULL DEFAULT true,
    notify_monthly_reports    boolean NOT NULL DEFAULT true,
    notify_system_updates     boolean NOT NULL DEFAULT true,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Kept apart from partner_brand so reading the settings never drags the image along.
CREATE TABLE partner_logos (
    partner_id   text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    content_type text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/svg+xml')),
    data         bytea NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 524288),
    sha256       text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Rendered at enqueue time, inside the caller's transaction: the row exists iff the change
-- that wanted the mail committed. `message` is the whole RFC 5322 message except the From
-- header, which the worker adds from `from_name` and `from_email` (else mail.from_address).
CREATE TABLE mail_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Idempotency key of the mail, global (callers put the partner id in it).
    reference    text NOT NULL UNIQUE CHECK (char_length(reference) BETWEEN 1 AND 300),
    partner_id   text REFERENCES partners (id) ON DELETE SET NULL,
    template     text NOT NULL,
    to_address   text NOT NULL,
    from_name    text NOT NULL DEFAULT '',
    from_email   text,
    subject      text NOT NULL,
    message_id   text NOT NULL,
    message      bytea NOT NULL,
    status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'DEAD')),
    attempts     smallint NOT NULL DEFAULT 0,
    max_attempts smallint NOT NULL,
    due_at       timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz,
    lease_owner  text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX mail_outbox_due ON mail_outbox (due_at, id) WHERE status = 'PENDING';
CREATE INDEX mail_outbox_partner ON mail_outbox (partner_id, id DESC);

CREATE FUNCTION mail_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Delivered at commit, once per transaction: wakes the mail worker.
    PERFORM pg_notify('controlplane_mail', '');
    RETURN NULL;
END $$;
CREATE TRIGGER mail_outbox_notify AFTER INSERT ON mail_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION mail_outbox_notify();

-- How far the notifier has read the sequenced events (events.position). It starts at the
-- events already sequenced when this migration runs: history is not mailed.
CREATE TABLE mail_notifier_cursor (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO mail_notifier_cursor (name, position)
    SELECT 'notifier', coalesce(max(position), 0) FROM events;
