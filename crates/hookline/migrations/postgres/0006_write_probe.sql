-- One row the readiness check rewrites: fails while the database refuses writes (read-only,
-- a standby in recovery, out of disk), so /readyz says so and recovers by itself.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at TIMESTAMPTZ NOT NULL
);
