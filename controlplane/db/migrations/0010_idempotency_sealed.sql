-- Idempotency replays are sealed (AES-256-GCM) from now on. The replays stored before
-- held response bodies in clear, some with secrets shown once (API keys, webhook signing
-- secrets, SIP passwords): their bodies go. The keys stay claimed, so a retry of one of
-- those requests gets 409 idempotency_replay_unavailable instead of running twice.
UPDATE idempotency_keys SET body = NULL WHERE body IS NOT NULL;
