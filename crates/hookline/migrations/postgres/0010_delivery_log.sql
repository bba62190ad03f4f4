-- The delivery log and redelivery (issue 11).
--
-- `deliveries_log` serves every log page: per subscription and stored state, newest first by
-- (created_at, id). A page asks each requested state's range for one page of rows and merges
-- them, so its cost is a few index probes however many deliveries the subscription has and
-- however rare the requested status is. Recoveries walk the same index (state 'failed').
CREATE INDEX deliveries_log ON deliveries(subscription_id, state, created_at, id);

-- The attempt count at the last redelivery: the retry schedule restarts from there, while
-- attempt numbers keep counting up (they fence outcomes and key the attempt log).
ALTER TABLE deliveries ADD COLUMN attempt_base BIGINT NOT NULL DEFAULT 0;

-- A bulk re-queue of failed deliveries, worked off at a bounded pace by the recovery runner.
-- `subscription_id` NULL: every subscription of the partner (operator bulk retry). The cursor
-- is the last (subscription, created_at, id) re-queued.
CREATE TABLE recoveries (
    id                  TEXT PRIMARY KEY,
    partner_id          TEXT NOT NULL,
    subscription_id     TEXT,
    since_at            BIGINT NOT NULL,
    until_at            BIGINT NOT NULL,
    status              TEXT NOT NULL,     -- running | completed
    total               BIGINT NOT NULL,
    queued              BIGINT NOT NULL DEFAULT 0,
    cursor_subscription TEXT NOT NULL DEFAULT '',
    cursor_created_at   BIGINT NOT NULL,
    cursor_id           BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX recoveries_running ON recoveries(created_at) WHERE status = 'running';
