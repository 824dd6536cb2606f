-- The webhook worker's lane (controlplane/webhooks/lane.py): a first attempt is made from memory
-- and its row written once, with its outcome. What the lane held when its worker died is found
-- again from the events after this cursor: every event at or below it has a row for each of its
-- deliveries (or none was owed).
CREATE TABLE webhook_cursor (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
INSERT INTO webhook_cursor (name, position)
    SELECT 'lane', coalesce(max(position), 0) FROM events;

-- Recovery asks, per event after the cursor and endpoint, whether its delivery was stored.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
