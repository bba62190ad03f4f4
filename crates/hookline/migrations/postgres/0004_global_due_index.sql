-- The head of all due work, oldest first. A claim reads it first (bounded by its batch size) and
-- the next wake-up is its first row after now; the per-subscription queues (0002) are walked only
-- when that head belongs to subscriptions at their in-flight cap. Without it, every claim walked
-- every subscription with a pending row, which grows with the number of active subscriptions.
-- Only the time in the key: it is maintained on every delivery write, and a narrow entry costs
-- less there than the table lookups it would save when a claim reads one batch of rows.
CREATE INDEX deliveries_next_due ON deliveries(next_attempt_at) WHERE state = 'pending';
