-- The wallet as a ledger (controlplane/wallet, docs/wallet.md): typed entries, each
-- carrying the tenant it concerns and an idempotency reference unique per partner;
-- the balance always equals the sum of the entries (wallet_mismatches() proves it);
-- auto-recharge settings and the low-balance warning state beside the balance.

ALTER TABLE wallet_entries ADD COLUMN tenant_id text;

-- Old kinds onto the typed ones. A call's usage takes the class of its record
-- (premium is billed like international; internal, emergency and invalid calls, when
-- they cost anything at all, count as local); with no record left, usage_local.
UPDATE wallet_entries e
   SET kind = CASE r.call_class WHEN 'toll_free' THEN 'usage_toll_free'
                                WHEN 'international' THEN 'usage_international'
                                WHEN 'premium' THEN 'usage_international'
                                ELSE 'usage_local' END,
       tenant_id = r.tenant_id
  FROM call_records r
 WHERE e.kind = 'usage' AND r.id = e.call_id;
UPDATE wallet_entries SET kind = 'usage_local' WHERE kind = 'usage';
UPDATE wallet_entries SET kind = 'setup_fee' WHERE kind = 'did_setup';
UPDATE wallet_entries SET kind = 'manual_adjustment' WHERE kind = 'credit';
UPDATE wallet_entries SET note = COALESCE(note, 'kind before 0012: ' || kind), kind = 'manual_adjustment'
 WHERE kind NOT IN ('usage_local', 'usage_toll_free', 'usage_international', 'setup_fee', 'manual_adjustment');

-- References, deterministically: a call's is call:<call id>; an operator credit's is
-- adjust:<its reference> (what POST /v1/wallet/credits now writes, so a retried old
-- credit still lands once); anything else legacy:<kind>:<entry id>.
UPDATE wallet_entries SET reference = 'adjust:' || reference
 WHERE reference IS NOT NULL AND kind = 'manual_adjustment';
UPDATE wallet_entries SET reference = 'call:' || call_id WHERE reference IS NULL AND call_id IS NOT NULL;
UPDATE wallet_entries SET reference = 'legacy:' || kind || ':' || id WHERE reference IS NULL;
ALTER TABLE wallet_entries ALTER COLUMN reference SET NOT NULL;
DROP INDEX wallet_entries_reference;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_partner_reference UNIQUE (partner_id, reference);
-- call:<call id> is the call's idempotency now; one unique index less on the hot path.
ALTER TABLE wallet_entries DROP CONSTRAINT wallet_entries_call_id_kind_key;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_kind_check CHECK (kind IN (
    'top_up', 'auto_recharge', 'usage_local', 'usage_toll_free', 'usage_international',
    'monthly_extension', 'monthly_did_local', 'monthly_did_toll_free', 'setup_fee', 'refund',
    'manual_adjustment'));
-- History pages by (created_at, id) per partner; it replaces the (partner, created_at) index,
-- so the calls' hot path maintains one index less than before (no (call_id, kind) either).
DROP INDEX wallet_entries_partner;
CREATE INDEX wallet_entries_history ON wallet_entries (partner_id, created_at, id);

-- Balances written before every movement was an entry (a balance set by hand): one
-- opening entry makes the ledger explain them.
INSERT INTO wallet_entries (partner_id, kind, amount, reference, note)
SELECT w.partner_id, 'manual_adjustment', w.balance - COALESCE(s.total, 0), 'opening:' || w.partner_id,
       'balance before the ledger was complete (migration 0012)'
  FROM partner_wallets w
  LEFT JOIN (SELECT partner_id, sum(amount) AS total FROM wallet_entries GROUP BY partner_id) s
         ON s.partner_id = w.partner_id
 WHERE w.balance <> COALESCE(s.total, 0);

ALTER TABLE partner_wallets
    ADD COLUMN auto_recharge boolean NOT NULL DEFAULT false,
    ADD COLUMN recharge_threshold bigint NOT NULL DEFAULT 0 CHECK (recharge_threshold >= 0),
    ADD COLUMN recharge_amount bigint NOT NULL DEFAULT 0 CHECK (recharge_amount >= 0),
    -- why auto-recharge was turned off by us (payment_declined, no_payment_method); NULL: by the partner
    ADD COLUMN recharge_off_reason text,
    -- below the warning threshold and warned: the next warning needs a climb back above it first
    ADD COLUMN low_balance_warned boolean NOT NULL DEFAULT false;
-- (No index over balance: it would end HOT updates of the row every call debits.)

-- The operator check (docs/wallet.md) and the tests: every partner whose balance is not
-- the sum of its entries. No row = the ledger holds.
CREATE FUNCTION wallet_mismatches()
RETURNS TABLE (partner_id text, balance bigint, entries_total bigint) LANGUAGE sql STABLE AS $$
    SELECT COALESCE(w.partner_id, s.partner_id), COALESCE(w.balance, 0)::bigint, COALESCE(s.total, 0)::bigint
      FROM partner_wallets w
      FULL JOIN (SELECT e.partner_id, sum(e.amount) AS total FROM wallet_entries e GROUP BY e.partner_id) s
        ON s.partner_id = w.partner_id
     WHERE COALESCE(w.balance, 0) <> COALESCE(s.total, 0)
$$;
