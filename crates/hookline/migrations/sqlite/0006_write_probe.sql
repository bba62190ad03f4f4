-- One row the readiness check rewrites: a write that goes through the same journal, fsync and
-- page allocation as a publish, so /readyz fails while the store refuses writes (disk full,
-- read-only) and recovers by itself once it takes them again.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL,
    filler BLOB NOT NULL
);
