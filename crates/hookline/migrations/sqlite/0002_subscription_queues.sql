-- Per-subscription due queues. A claim walks the pending subscriptions (one index probe each) and
-- takes each one's oldest due rows, so a subscription at its in-flight cap with a million rows
-- behind it costs one probe, not a walk over its backlog.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(subscription_id, next_attempt_at) WHERE state = 'pending';
-- Unused by any query; every index is paid for on each delivery write.
DROP INDEX deliveries_subscription;
