-- Tenant billing leftovers (issue 15, docs/invoices.md): the unit history announces each change
-- (a stretch opened or closed) on commit, to every daemon, so the spend cap counts a unit added
-- or removed mid-period at once (limits, through signals.tenant_units_changed). pg_notify folds
-- identical payloads of one transaction: a bulk change of one tenant is one notice.
CREATE FUNCTION unit_history_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('controlplane_units', NEW.tenant_id);
    RETURN NULL;
END $$;

CREATE TRIGGER unit_history_notify AFTER INSERT OR UPDATE OF ended_at, tenant_id, unit_kind ON unit_history
    FOR EACH ROW EXECUTE FUNCTION unit_history_notify();
