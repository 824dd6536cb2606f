-- Tenant invoices (controlplane/invoices, docs/invoices.md): tax jurisdictions, the unit history
-- invoices prorate from, per-partner gapless numbering, the invoices, their payments/refunds,
-- credits and one-time charges waiting for the next invoice.

-- Tax jurisdictions per partner (seed 003 taxes); the rate is a percent, exact ("8.5" = 8.5 %).
CREATE TABLE tax_jurisdictions (
    id          text PRIMARY KEY,
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    code        text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    rate        numeric NOT NULL CHECK (rate >= 0 AND rate <= 100),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, code)
);

-- A tenant belongs to at most one jurisdiction; the invoice copies name, code and rate when it is
-- computed, so a later change affects new invoices only.
CREATE TABLE tenant_tax (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    jurisdiction_id text NOT NULL REFERENCES tax_jurisdictions (id) ON DELETE CASCADE,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Unit history: extensions and DIDs are deleted from their tables (or move between tenants), so
-- each stretch of time a unit belonged to a tenant is kept here, maintained by triggers (whatever
-- path changes the unit). No foreign keys: the history outlives the unit.
CREATE TABLE unit_history (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    unit_kind   text NOT NULL CHECK (unit_kind IN ('extension', 'did_local', 'did_toll_free')),
    unit_id     text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX unit_history_tenant ON unit_history (tenant_id, started_at);
CREATE UNIQUE INDEX unit_history_open ON unit_history (unit_id) WHERE ended_at IS NULL;

CREATE FUNCTION unit_history_extensions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO unit_history (tenant_id, unit_kind, unit_id, started_at)
        VALUES (NEW.tenant_id, 'extension', NEW.id, LEAST(NEW.created_at, now()));
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE unit_history SET ended_at = GREATEST(now(), started_at)
         WHERE unit_id = OLD.id AND ended_at IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER extensions_unit_history AFTER INSERT OR DELETE ON extensions
    FOR EACH ROW EXECUTE FUNCTION unit_history_extensions();

-- A DID counts for a tenant while it is ACTIVE and assigned to it.
CREATE FUNCTION unit_history_dids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_held boolean := TG_OP <> 'INSERT' AND OLD.tenant_id IS NOT NULL AND OLD.status = 'ACTIVE';
    is_held  boolean := TG_OP <> 'DELETE' AND NEW.tenant_id IS NOT NULL AND NEW.status = 'ACTIVE';
BEGIN
    IF was_held AND is_held AND OLD.tenant_id = NEW.tenant_id AND OLD.kind = NEW.kind THEN
        RETURN NULL;
    END IF;
    IF was_held THEN
        UPDATE unit_history SET ended_at = GREATEST(now(), started_at)
         WHERE unit_id = OLD.id AND ended_at IS NULL;
    END IF;
    IF is_held THEN
        INSERT INTO unit_history (tenant_id, unit_kind, unit_id, started_at)
        VALUES (NEW.tenant_id, CASE NEW.kind WHEN 'toll_free' THEN 'did_toll_free' ELSE 'did_local' END, NEW.id,
                CASE TG_OP WHEN 'INSERT' THEN LEAST(NEW.created_at, now()) ELSE now() END);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER dids_unit_history AFTER INSERT OR DELETE OR UPDATE OF tenant_id, status, kind ON dids
    FOR EACH ROW EXECUTE FUNCTION unit_history_dids();

INSERT INTO unit_history (tenant_id, unit_kind, unit_id, started_at)
SELECT tenant_id, 'extension', id, created_at FROM extensions;
INSERT INTO unit_history (tenant_id, unit_kind, unit_id, started_at)
SELECT tenant_id, CASE kind WHEN 'toll_free' THEN 'did_toll_free' ELSE 'did_local' END, id, created_at
  FROM dids WHERE tenant_id IS NOT NULL AND status = 'ACTIVE';

-- Numbering per partner: the counter row is updated in the issuing transaction (its row lock
-- serialises issuers), so numbers are gapless and a rolled-back issue takes no number.
CREATE TABLE invoice_numbering (
    partner_id  text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    prefix      text NOT NULL DEFAULT 'INV-' CHECK (prefix ~ '^[A-Za-z0-9._/-]{0,16}$'),
    next_number bigint NOT NULL DEFAULT 1 CHECK (next_number >= 1)
);

CREATE TABLE tenant_invoices (
    id              text PRIMARY KEY,
    partner_id      text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number          text,
    status          text NOT NULL CHECK (status IN ('DRAFT', 'SENT', 'PARTIALLY_PAID', 'PAID', 'OVERDUE',
                                                    'CANCELLED', 'VOID')),
    off_cycle       boolean NOT NULL DEFAULT false,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    issued_at       timestamptz,
    due_at          timestamptz,
    currency        text NOT NULL,
    subtotal_micros bigint NOT NULL,
    tax_micros      bigint NOT NULL CHECK (tax_micros >= 0),
    total_micros    bigint NOT NULL,
    paid_micros     bigint NOT NULL DEFAULT 0 CHECK (paid_micros >= 0),
    credited_micros bigint NOT NULL DEFAULT 0 CHECK (credited_micros >= 0 AND credited_micros <= paid_micros),
    lines           jsonb NOT NULL,
    tax_name        text,
    tax_code        text,
    tax_rate        text,
    net_terms_days  integer NOT NULL DEFAULT 15,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start OR (off_cycle AND period_end = period_start)),
    CHECK ((number IS NULL) = (status IN ('DRAFT', 'VOID')))
);
-- Exactly one cycle invoice per tenant and period, whatever runs the job and how often.
CREATE UNIQUE INDEX tenant_invoices_period ON tenant_invoices (tenant_id, period_start) WHERE NOT off_cycle;
CREATE UNIQUE INDEX tenant_invoices_number ON tenant_invoices (partner_id, number);
CREATE INDEX tenant_invoices_partner ON tenant_invoices (partner_id, created_at DESC, id DESC);
CREATE INDEX tenant_invoices_unpaid ON tenant_invoices (due_at) WHERE status IN ('SENT', 'PARTIALLY_PAID', 'OVERDUE');

-- Payments and refunds applied to an invoice, idempotent by reference.
CREATE TABLE tenant_invoice_payments (
    invoice_id    text NOT NULL REFERENCES tenant_invoices (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('payment', 'refund')),
    reference     text NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, kind, reference)
);

-- Credits (refunded usage, goodwill) and one-time charges (setup, porting, custom) waiting for the
-- tenant's next invoice; invoice_id is set by the invoice that consumed them.
CREATE TABLE tenant_invoice_items (
    id            bigserial PRIMARY KEY,
    partner_id    text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('credit', 'setup', 'porting', 'custom')),
    description   text NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros > 0),
    reference     text NOT NULL,
    invoice_id    text REFERENCES tenant_invoices (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, reference)
);
CREATE INDEX tenant_invoice_items_pending ON tenant_invoice_items (tenant_id) WHERE invoice_id IS NULL;
