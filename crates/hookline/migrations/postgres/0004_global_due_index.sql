-- The head of all due work, oldest first. A claim reads it first (bounded by its batch size) and
-- the next wake-up is its first row after now; the per-subscription queues (0002) are walked only
-- when that head belongs to subscriptions at their in-flight cap. Without it, every claim walked
-- every subscription with a pending row, which grows with the number of active subscriptions.
-- subscription_id is in the key so reading the head needs no table lookups.
CREATE INDEX deliveries_next_due ON deliveries(next_attempt_at, subscription_id) WHERE state = 'pending';
