-- Reports and analytics (controlplane/reports, docs/reports.md): the partner's time zone, the
-- daily rollups every usage and cost figure reads, and the monthly report mail's bookkeeping.

-- Periods, months and "the 1st" of a partner's reports are in its zone (IANA name; UTC by default).
ALTER TABLE partners ADD COLUMN timezone text NOT NULL DEFAULT 'UTC'
    CHECK (char_length(timezone) BETWEEN 1 AND 64);

-- One row per partner, tenant and partner-local day: the tenant's calls that started that day, by
-- class (billable seconds and retail charge), and the wholesale cost the platform charged the
-- partner's wallet for it that day (usage, monthly unit fees, setup fees: report_cost_kinds();
-- tenant_id '' holds the entries that name no tenant). Kept by statement-level triggers on
-- call_records and wallet_entries, in the transaction that writes the raw row (whatever path:
-- live recorder, CDR catch-up, COPY), so it is never behind them; rebuilt for a partner whose zone
-- changes (report_rollups_rebuild). Reports read one row per tenant and day instead of every call.
CREATE TABLE report_daily (
    partner_id            text NOT NULL,
    tenant_id             text NOT NULL,
    day                   date NOT NULL,
    calls                 bigint NOT NULL DEFAULT 0,
    local_s               bigint NOT NULL DEFAULT 0,
    toll_free_s           bigint NOT NULL DEFAULT 0,
    international_s       bigint NOT NULL DEFAULT 0,
    other_s               bigint NOT NULL DEFAULT 0,  -- internal, emergency, premium, invalid
    local_retail_micros   bigint NOT NULL DEFAULT 0,
    toll_free_retail_micros bigint NOT NULL DEFAULT 0,
    international_retail_micros bigint NOT NULL DEFAULT 0,
    other_retail_micros   bigint NOT NULL DEFAULT 0,
    wholesale_micros      bigint NOT NULL DEFAULT 0,  -- as rated on the call records
    cost_micros           bigint NOT NULL DEFAULT 0,  -- as debited to the wallet (what margin uses)
    PRIMARY KEY (partner_id, tenant_id, day)
);
CREATE INDEX report_daily_partner_day ON report_daily (partner_id, day);

-- The same per partner-local month (month = its first day): a long period reads its whole months
-- here and only its partial months' days in report_daily (a year: ~13 rows per tenant, not 365).
-- Written by the same triggers in the same statement, so the two always agree.
CREATE TABLE report_monthly (LIKE report_daily INCLUDING DEFAULTS);
ALTER TABLE report_monthly RENAME COLUMN day TO month;
ALTER TABLE report_monthly ADD PRIMARY KEY (partner_id, tenant_id, month);
CREATE INDEX report_monthly_partner_month ON report_monthly (partner_id, month);

-- The wallet kinds that are a cost the partner pays the platform (docs/reports.md "Margin").
CREATE FUNCTION report_cost_kinds() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['usage_local', 'usage_toll_free', 'usage_international', 'monthly_extension',
                 'monthly_did_local', 'monthly_did_toll_free', 'setup_fee']
$$;

-- The call rows of a set of call records (a transition table or call_records itself).
CREATE FUNCTION report_call_rows(p_partner text) RETURNS TABLE (
    partner_id text, tenant_id text, day date, calls bigint, local_s bigint, toll_free_s bigint,
    international_s bigint, other_s bigint, local_r bigint, toll_free_r bigint, international_r bigint,
    other_r bigint, wholesale bigint) LANGUAGE sql STABLE AS $$
    SELECT c.partner_id, c.tenant_id, (c.started_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date, count(*),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'local'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'toll_free'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'international'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class NOT IN ('local', 'toll_free', 'international')), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'local'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'toll_free'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'international'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class NOT IN ('local', 'toll_free', 'international')), 0),
           coalesce(sum(c.wholesale_micros), 0)
      FROM call_records c LEFT JOIN partners p ON p.id = c.partner_id
     WHERE p_partner IS NULL OR c.partner_id = p_partner
     GROUP BY 1, 2, 3
$$;

-- Adds a statement's changes (per partner, tenant and day) to report_daily and, summed per month, to
-- report_monthly; keys in one order for every writer (no deadlock between two).
CREATE FUNCTION report_apply_delta(p_rows report_daily[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_daily AS r
    SELECT * FROM unnest(p_rows) ORDER BY partner_id, tenant_id, day
    ON CONFLICT (partner_id, tenant_id, day) DO UPDATE
       SET calls = r.calls + EXCLUDED.calls, local_s = r.local_s + EXCLUDED.local_s,
           toll_free_s = r.toll_free_s + EXCLUDED.toll_free_s,
           international_s = r.international_s + EXCLUDED.international_s, other_s = r.other_s + EXCLUDED.other_s,
           local_retail_micros = r.local_retail_micros + EXCLUDED.local_retail_micros,
           toll_free_retail_micros = r.toll_free_retail_micros + EXCLUDED.toll_free_retail_micros,
           international_retail_micros = r.international_retail_micros + EXCLUDED.international_retail_micros,
           other_retail_micros = r.other_retail_micros + EXCLUDED.other_retail_micros,
           wholesale_micros = r.wholesale_micros + EXCLUDED.wholesale_micros,
           cost_micros = r.cost_micros + EXCLUDED.cost_micros;
    INSERT INTO report_monthly AS r
    SELECT partner_id, tenant_id, date_trunc('month', day)::date, sum(calls), sum(local_s), sum(toll_free_s),
           sum(international_s), sum(other_s), sum(local_retail_micros), sum(toll_free_retail_micros),
           sum(international_retail_micros), sum(other_retail_micros), sum(wholesale_micros), sum(cost_micros)
      FROM unnest(p_rows) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (partner_id, tenant_id, month) DO UPDATE
       SET calls = r.calls + EXCLUDED.calls, local_s = r.local_s + EXCLUDED.local_s,
           toll_free_s = r.toll_free_s + EXCLUDED.toll_free_s,
           international_s = r.international_s + EXCLUDED.international_s, other_s = r.other_s + EXCLUDED.other_s,
           local_retail_micros = r.local_retail_micros + EXCLUDED.local_retail_micros,
           toll_free_retail_micros = r.toll_free_retail_micros + EXCLUDED.toll_free_retail_micros,
           international_retail_micros = r.international_retail_micros + EXCLUDED.international_retail_micros,
           other_retail_micros = r.other_retail_micros + EXCLUDED.other_retail_micros,
           wholesale_micros = r.wholesale_micros + EXCLUDED.wholesale_micros,
           cost_micros = r.cost_micros + EXCLUDED.cost_micros;
END $$;

CREATE FUNCTION report_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_apply_delta(ARRAY(
    SELECT ROW(c.partner_id, c.tenant_id, (c.started_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date, count(*),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'local'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'toll_free'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class = 'international'), 0),
           coalesce(sum(c.billable_s) FILTER (WHERE c.call_class NOT IN ('local', 'toll_free', 'international')), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'local'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'toll_free'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class = 'international'), 0),
           coalesce(sum(c.retail_micros) FILTER (WHERE c.call_class NOT IN ('local', 'toll_free', 'international')), 0),
           coalesce(sum(c.wholesale_micros), 0), 0)::report_daily
      FROM report_new_calls c LEFT JOIN partners p ON p.id = c.partner_id
     GROUP BY c.partner_id, c.tenant_id, (c.started_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date));
    RETURN NULL;
END $$;
CREATE TRIGGER call_records_report_daily AFTER INSERT ON call_records
    REFERENCING NEW TABLE AS report_new_calls FOR EACH STATEMENT EXECUTE FUNCTION report_usage_rollup();

CREATE FUNCTION report_cost_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM report_new_entries n WHERE n.kind = ANY (report_cost_kinds())) THEN
        RETURN NULL;  -- top-ups and adjustments: nothing to count
    END IF;
    PERFORM report_apply_delta(ARRAY(
    SELECT ROW(n.partner_id, coalesce(n.tenant_id, ''), (n.created_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date,
               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -sum(n.amount))::report_daily
      FROM report_new_entries n LEFT JOIN partners p ON p.id = n.partner_id
     WHERE n.kind = ANY (report_cost_kinds())
     GROUP BY n.partner_id, coalesce(n.tenant_id, ''), (n.created_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date));
    RETURN NULL;
END $$;
CREATE TRIGGER wallet_entries_report_daily AFTER INSERT ON wallet_entries
    REFERENCING NEW TABLE AS report_new_entries FOR EACH STATEMENT EXECUTE FUNCTION report_cost_rollup();

-- Recompute a partner's rollup from the raw rows (NULL: every partner): after its zone changed
-- (days move), for the rows present when this migration runs, and by an operator after a bulk load
-- made with the triggers disabled.
CREATE FUNCTION report_rollups_rebuild(p_partner text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM report_daily WHERE p_partner IS NULL OR partner_id = p_partner;
    DELETE FROM report_monthly WHERE p_partner IS NULL OR partner_id = p_partner;
    INSERT INTO report_daily (partner_id, tenant_id, day, calls, local_s, toll_free_s, international_s, other_s,
                              local_retail_micros, toll_free_retail_micros, international_retail_micros,
                              other_retail_micros, wholesale_micros)
    SELECT * FROM report_call_rows(p_partner);
    INSERT INTO report_daily AS r (partner_id, tenant_id, day, cost_micros)
    SELECT e.partner_id, coalesce(e.tenant_id, ''), (e.created_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date,
           -sum(e.amount)
      FROM wallet_entries e LEFT JOIN partners p ON p.id = e.partner_id
     WHERE (p_partner IS NULL OR e.partner_id = p_partner) AND e.kind = ANY (report_cost_kinds())
     GROUP BY 1, 2, 3
    ON CONFLICT (partner_id, tenant_id, day) DO UPDATE SET cost_micros = EXCLUDED.cost_micros;
    INSERT INTO report_monthly
    SELECT partner_id, tenant_id, date_trunc('month', day)::date, sum(calls), sum(local_s), sum(toll_free_s),
           sum(international_s), sum(other_s), sum(local_retail_micros), sum(toll_free_retail_micros),
           sum(international_retail_micros), sum(other_retail_micros), sum(wholesale_micros), sum(cost_micros)
      FROM report_daily WHERE p_partner IS NULL OR partner_id = p_partner GROUP BY 1, 2, 3;
END $$;

SELECT report_rollups_rebuild(NULL);
