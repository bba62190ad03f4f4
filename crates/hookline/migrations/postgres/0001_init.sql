-- hookline schema v1 (PostgreSQL). Times are integer microseconds since the Unix epoch,
-- as in the SQLite schema, so both backends share the same row model.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE partners (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners(id),
    name       TEXT,
    key_hash   BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_partner ON api_keys(partner_id);

CREATE TABLE subscriptions (
    id                 TEXT PRIMARY KEY,
    partner_id         TEXT NOT NULL REFERENCES partners(id),
    target_url         TEXT NOT NULL,
    subscribed_events  TEXT NOT NULL,
    phone_numbers      TEXT,
    is_active          BOOLEAN NOT NULL,
    signing_secret     TEXT NOT NULL,
    routing_id_header  TEXT,
    routing_key_header TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deleted_at         BIGINT
);
CREATE UNIQUE INDEX subscriptions_partner_url ON subscriptions(partner_id, target_url) WHERE deleted_at IS NULL;
CREATE INDEX subscriptions_partner_live ON subscriptions(partner_id, id) WHERE deleted_at IS NULL;

CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    partner_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    phone_number TEXT,
    created_at   TEXT NOT NULL,
    trace_id     TEXT NOT NULL,
    data         TEXT NOT NULL,
    deliveries   BIGINT NOT NULL,
    accepted_at  BIGINT NOT NULL,
    UNIQUE (partner_id, event_id)
);

CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_seq       BIGINT NOT NULL REFERENCES events(seq),
    subscription_id TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, id);
CREATE INDEX deliveries_event ON deliveries(event_seq);

CREATE TABLE delivery_attempts (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   BIGINT NOT NULL REFERENCES deliveries(id),
    attempt       BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   BIGINT,
    error_kind    TEXT,
    error_message TEXT,
    response_body TEXT,
    UNIQUE (delivery_id, attempt)
);
