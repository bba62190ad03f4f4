-- The 2025-01-01 `data` of an event (issue 15), beside the published 2026-02-03 one: the
-- publisher's own `data_by_version["2025-01-01"]`, or the conversion of a message event, made
-- once at publish when a 2025-01-01 subscription matched it. NULL for everything else (almost
-- every event), so old rows and new ones cost nothing extra.
ALTER TABLE events ADD COLUMN data_v2025 TEXT;
