-- The hash of the API key or admin token a portal sign-in presented: the session ends when that
-- credential would no longer be accepted (a revoked key, a changed admin token). NULL for links
-- and the sessions they open. Sessions opened before this column existed keep NULL: they were
-- opened under the old rule and expire within HOOKLINE_PORTAL_SESSION_TTL.
ALTER TABLE portal_sessions ADD COLUMN credential_hash BYTEA;
