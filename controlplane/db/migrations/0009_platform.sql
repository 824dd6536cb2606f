-- The platform operator's credential (docs/platform.md): its actions are audited as
-- 'platform', and its wallet credits are ledger entries made idempotent by the
-- operator's own reference (a transfer id, an invoice number): one entry per
-- partner and reference, however often the request is sent.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_type_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_type_check
    CHECK (actor_type IN ('service', 'api_key', 'platform', 'system'));

ALTER TABLE wallet_entries ADD COLUMN reference text;
ALTER TABLE wallet_entries ADD COLUMN note text;
CREATE UNIQUE INDEX wallet_entries_reference ON wallet_entries (partner_id, reference)
    WHERE reference IS NOT NULL;
