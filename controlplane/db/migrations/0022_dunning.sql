-- Dunning (controlplane/dunning) and the stored suspension cause (controlplane/tenants).

-- Why a SUSPENDED tenant is suspended: 'manual' (by hand, through the RPC), 'usage_cap:<cap>'
-- (controlplane/limits), 'dunning:<invoice id>' (controlplane/dunning). NULL whenever the tenant
-- is not SUSPENDED, and for tenants suspended before this migration (never auto-reactivated).
-- A reactivation from the cause's resolution (signals.reactivation_due) only applies while the
-- stored cause is still the resolved one.
ALTER TABLE tenants ADD COLUMN suspension_cause text
    CHECK (suspension_cause IS NULL OR char_length(suspension_cause) BETWEEN 1 AND 200);
CREATE INDEX tenants_suspended ON tenants (id) WHERE status = 'SUSPENDED';

-- The partner's account-wide dunning policy (PUT /v1/account/dunning). No row: each tenant's
-- billing profile decides (its terms' overdue_after_days / suspend_after_days, 7 / 14 without one).
-- suspend_after_days NULL: no automatic suspension (manual).
CREATE TABLE dunning_settings (
    partner_id         text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    overdue_after_days integer NOT NULL CHECK (overdue_after_days BETWEEN 0 AND 365),
    suspend_after_days integer CHECK (suspend_after_days BETWEEN 0 AND 365),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- What dunning did to each unpaid invoice, so a job run twice (or killed half-way) makes
-- each transition once: the card retries it made (attempt numbers, given to collection as its
-- idempotency) and the suspension it asked for.
CREATE TABLE dunning_invoices (
    invoice_id     text PRIMARY KEY,
    partner_id     text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    tenant_id      text NOT NULL,
    overdue_at     timestamptz,
    suspended_at   timestamptz,
    retries        integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
    last_retry_at  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dunning_invoices_tenant ON dunning_invoices (tenant_id);
