-- hookline schema v1 (SQLite). Times are integer microseconds since the Unix epoch.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE partners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners(id),
    name       TEXT,
    key_hash   BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_partner ON api_keys(partner_id);

CREATE TABLE subscriptions (
    id                 TEXT PRIMARY KEY,
    partner_id         TEXT NOT NULL REFERENCES partners(id),
    target_url         TEXT NOT NULL,
    subscribed_events  TEXT NOT NULL,  -- JSON array of event type names
    phone_numbers      TEXT,           -- JSON array, NULL = every line
    is_active          INTEGER NOT NULL,
    signing_secret     TEXT NOT NULL,
    routing_id_header  TEXT,
    routing_key_header TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deleted_at         INTEGER
);
-- "Each target_url can only be used once per account": live subscriptions only.
CREATE UNIQUE INDEX subscriptions_partner_url ON subscriptions(partner_id, target_url) WHERE deleted_at IS NULL;
CREATE INDEX subscriptions_partner_live ON subscriptions(partner_id, id) WHERE deleted_at IS NULL;

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    phone_number TEXT,
    created_at   TEXT NOT NULL,        -- RFC 3339 exactly as it goes into the envelope
    trace_id     TEXT NOT NULL,
    data         TEXT NOT NULL,        -- the publisher's JSON object, verbatim
    deliveries   INTEGER NOT NULL,
    accepted_at  INTEGER NOT NULL,
    UNIQUE (partner_id, event_id)
);

-- One row per (event, subscription). `next_attempt_at` doubles as the lease: a claim moves it
-- past the lease, so a delivery whose worker died becomes due again on its own.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq       INTEGER NOT NULL REFERENCES events(seq),
    subscription_id TEXT NOT NULL,
    state           TEXT NOT NULL,     -- pending | succeeded | failed | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, id);
CREATE INDEX deliveries_event ON deliveries(event_seq);

CREATE TABLE delivery_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id   INTEGER NOT NULL REFERENCES deliveries(id),
    attempt       INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    UNIQUE (delivery_id, attempt)
);
