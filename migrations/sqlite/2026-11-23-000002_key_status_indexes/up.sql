-- The key list's status filters, fast at a million keys: revoked keys in
-- id order, and live keys by expiry (for `expired`).
CREATE INDEX api_keys_revoked_by_tenant ON api_keys (tenant_id, id) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_expiring_by_tenant ON api_keys (tenant_id, expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
