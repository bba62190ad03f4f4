-- "Each target_url can only be used once per account", compared as deliveries are sent:
-- `target_url_key` is the URL normalised (scheme and host lowercased, IDN hosts in punycode,
-- default port dropped; TargetUrl::uniqueness_key), while `target_url` stays as the partner
-- wrote it. Rows written before this migration get their key from its Rust data step (see
-- store/migrate.rs), run after this SQL in the same transaction. NULL (a pre-existing
-- duplicate) is outside the index.
ALTER TABLE subscriptions ADD COLUMN target_url_key TEXT;
DROP INDEX subscriptions_partner_url;
CREATE UNIQUE INDEX subscriptions_partner_url_key ON subscriptions(partner_id, target_url_key) WHERE deleted_at IS NULL;
