-- The queue gauges, shared by every node: one node at a time recounts them (under an advisory
-- lock) when this row is older than its sample interval, and every node exports the row, so
-- scrapes never make each node scan the deliveries table. Times are the database's clock.
-- Retention needs no new index: purge batches walk events by `seq`, deliveries by
-- `deliveries_event` and attempts by their `(delivery_id, attempt)` key.
CREATE TABLE queue_stats (
    id                     INTEGER PRIMARY KEY CHECK (id = 1),
    sampled_at             BIGINT NOT NULL,
    pending                BIGINT NOT NULL,
    retrying               BIGINT NOT NULL,
    due                    BIGINT NOT NULL,
    oldest_due_at          BIGINT,
    subscriptions_active   BIGINT NOT NULL,
    subscriptions_inactive BIGINT NOT NULL,
    size_bytes             BIGINT NOT NULL
);
