-- Calls: rated call records, calls in progress, billing profiles, rate decks, the
-- partner wallet ledger, tenant usage per cycle, and Asterisk's own CDRs (cdr_pgsql).

-- A tenant's retail usage pricing (seed 003 "Billing profiles"). Money in micro-units.
CREATE TABLE billing_profiles (
    tenant_id                text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    per_minute               bigint NOT NULL CHECK (per_minute >= 0),
    local_per_minute         bigint CHECK (local_per_minute >= 0),
    toll_free_per_minute     bigint CHECK (toll_free_per_minute >= 0),
    international_per_minute bigint CHECK (international_per_minute >= 0),
    connect_fee              bigint NOT NULL DEFAULT 0 CHECK (connect_fee >= 0),
    min_seconds              integer NOT NULL DEFAULT 6 CHECK (min_seconds >= 0),
    increment_seconds        integer NOT NULL DEFAULT 6 CHECK (increment_seconds >= 1),
    rounding                 text NOT NULL DEFAULT 'half_up' CHECK (rounding IN ('up', 'down', 'half_up')),
    charge_inbound           boolean NOT NULL DEFAULT true,
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- A partner's international retail deck, kept as the CSV it was loaded from.
CREATE TABLE retail_rate_decks (
    partner_id text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    csv        text NOT NULL,
    rates      integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per call whose events have started: which events went out, so a
-- restarted daemon never sends call.initiated twice, and what it knew.
CREATE TABLE calls_active (
    linkedid      text PRIMARY KEY,
    call_id       text NOT NULL,
    tenant_id     text NOT NULL,
    partner_id    text NOT NULL,
    inbound       boolean NOT NULL,
    dialed        text NOT NULL,
    caller_num    text NOT NULL,
    started_at    timestamptz NOT NULL,
    answered_at   timestamptz,
    answered_sent boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE call_records (
    id                   text PRIMARY KEY,
    -- Asterisk's linkedid: one call, one record, however often it is ingested.
    linkedid             text NOT NULL UNIQUE,
    tenant_id            text NOT NULL,
    partner_id           text NOT NULL,
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    caller               text NOT NULL,
    callee               text NOT NULL,
    did                  text,
    extension            text,
    started_at           timestamptz NOT NULL,
    answered_at          timestamptz,
    ended_at             timestamptz NOT NULL,
    duration_s           integer NOT NULL,
    answered_s           integer NOT NULL,
    billable_s           integer NOT NULL,
    wholesale_billable_s integer NOT NULL,
    disposition          text NOT NULL,
    hangup_cause         integer NOT NULL,
    call_class           text NOT NULL,
    wholesale_micros     bigint,
    retail_micros        bigint,
    wholesale_rate_id    text,
    retail_rate_id       text,
    notes                text[] NOT NULL DEFAULT '{}',
    late                 boolean NOT NULL DEFAULT false,
    recorded_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX call_records_partner_started ON call_records (partner_id, started_at DESC, id DESC);
CREATE INDEX call_records_tenant_started ON call_records (tenant_id, started_at DESC, id DESC);

-- The partner's wallet (seed 003 "The wallet"): a balance and its ledger.
CREATE TABLE partner_wallets (
    partner_id text PRIMARY KEY REFERENCES partners (id) ON DELETE CASCADE,
    balance    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallet_entries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id text NOT NULL,
    kind       text NOT NULL,
    amount     bigint NOT NULL,
    call_id    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, kind)
);
CREATE INDEX wallet_entries_partner ON wallet_entries (partner_id, created_at);

-- Usage of the current cycle (calendar month, UTC), per tenant and class.
CREATE TABLE tenant_usage (
    tenant_id        text NOT NULL,
    cycle_start      date NOT NULL,
    call_class       text NOT NULL,
    calls            integer NOT NULL DEFAULT 0,
    answered_s       bigint NOT NULL DEFAULT 0,
    billable_s       bigint NOT NULL DEFAULT 0,
    retail_micros    bigint NOT NULL DEFAULT 0,
    wholesale_micros bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, cycle_start, call_class)
);

-- Written by Asterisk (cdr_pgsql), not by us: the durable store a restarted daemon
-- rebuilds missed calls from. cdr_pgsql fills the columns whose names it knows;
-- float8 times arrive as epoch seconds with microseconds (no time zone guesswork).
-- Our own columns have defaults (a serial, not an identity: cdr_pgsql skips a
-- column only when it has a default, and identity columns do not report one).
CREATE TABLE asterisk_cdr (
    id          bigserial PRIMARY KEY,
    start       double precision,
    answer      double precision,
    "end"       double precision,
    clid        text NOT NULL DEFAULT '',
    src         text NOT NULL DEFAULT '',
    dst         text NOT NULL DEFAULT '',
    dcontext    text NOT NULL DEFAULT '',
    channel     text NOT NULL DEFAULT '',
    dstchannel  text NOT NULL DEFAULT '',
    lastapp     text NOT NULL DEFAULT '',
    lastdata    text NOT NULL DEFAULT '',
    duration    integer NOT NULL DEFAULT 0,
    billsec     integer NOT NULL DEFAULT 0,
    disposition text NOT NULL DEFAULT '',
    amaflags    integer NOT NULL DEFAULT 0,
    accountcode text NOT NULL DEFAULT '',
    peeraccount text NOT NULL DEFAULT '',
    uniqueid    text NOT NULL DEFAULT '',
    linkedid    text NOT NULL DEFAULT '',
    userfield   text NOT NULL DEFAULT '',
    sequence    integer NOT NULL DEFAULT 0,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- Set once the call is recorded, or found to be no tenant's (health checks).
    handled     boolean NOT NULL DEFAULT false
);
CREATE INDEX asterisk_cdr_linkedid ON asterisk_cdr (linkedid);
CREATE INDEX asterisk_cdr_unhandled ON asterisk_cdr (received_at) WHERE NOT handled;
