-- Portal links (one-time, exchanged for a session) and portal sessions, by the SHA-256 of their
-- token. partner_id NULL is the operator. Rows past expires_at are dead and purged on writes.
CREATE TABLE portal_sessions (
    token_hash BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('link', 'session')),
    partner_id TEXT REFERENCES partners(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions(expires_at);
