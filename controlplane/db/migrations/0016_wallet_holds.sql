-- Admission holds the partner's wallet for calls in progress (controlplane/limits, issue 14):
-- what each call reserved at the partner's (wholesale) rate, so a restarted daemon still counts
-- it against the balance.
ALTER TABLE limit_reservations ADD COLUMN wallet_micros bigint NOT NULL DEFAULT 0 CHECK (wallet_micros >= 0);
