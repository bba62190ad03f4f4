-- Signing-secret rotation: the secret a rotation replaced keeps signing (beside the new one)
-- until `previous_secret_expires_at` (microseconds, the API node's clock); stored like
-- `signing_secret` (sealed when a key is configured). NULL: no previous secret.
ALTER TABLE subscriptions ADD COLUMN previous_signing_secret TEXT;
ALTER TABLE subscriptions ADD COLUMN previous_secret_expires_at BIGINT;
-- Dead-endpoint detection, kept up to date by each outcome write instead of a scan: the start
-- of the first failed attempt since the last success (NULL: the last attempt succeeded), and
-- the deliveries that failed for good since then.
ALTER TABLE subscriptions ADD COLUMN failing_since BIGINT;
ALTER TABLE subscriptions ADD COLUMN exhausted_failures BIGINT NOT NULL DEFAULT 0;
