-- Tenants and their policy. Tenants are never deleted, so slugs are never reused.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    api_keys_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    default_key_lifetime_s BIGINT,
    max_key_lifetime_s BIGINT,
    max_keys_per_owner BIGINT NOT NULL DEFAULT 100,
    default_token_ttl_s BIGINT NOT NULL DEFAULT 900,
    max_token_ttl_s BIGINT NOT NULL DEFAULT 3600,
    require_ip_allowlist BOOLEAN NOT NULL DEFAULT FALSE,
    allowed_ip_ranges TEXT NOT NULL DEFAULT '[]',
    default_audience TEXT NOT NULL,
    default_rate_limit_per_s DOUBLE PRECISION NOT NULL DEFAULT 100,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Registered audiences; the primary key makes each unique across tenants.
CREATE TABLE tenant_audiences (
    audience TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX tenant_audiences_by_tenant ON tenant_audiences (tenant_id);

-- API keys. Only hashes of standard secrets are stored; advanced secrets are
-- encrypted under the master key. deleted_at marks a tombstone.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    description TEXT,
    owner TEXT,
    start TEXT NOT NULL,
    secret_hash BYTEA UNIQUE,
    previous_secret_hash BYTEA UNIQUE,
    previous_expires_at TIMESTAMP,
    secret_enc BYTEA,
    previous_secret_enc BYTEA,
    security_level TEXT NOT NULL,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    ip_allowlist TEXT,
    max_token_ttl_s BIGINT,
    rate_limit_per_s DOUBLE PRECISION,
    claims TEXT,
    metadata TEXT,
    created_by TEXT NOT NULL,
    parent_key_id TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    tokens_issued BIGINT NOT NULL DEFAULT 0,
    revoked_at TIMESTAMP,
    revoked_reason TEXT,
    deleted_at TIMESTAMP
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, id);
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, owner, id);
CREATE INDEX api_keys_by_parent ON api_keys (parent_key_id);

-- JWT signing keys; private parts encrypted under the master key.
-- next: activates_at in the future; active: the newest activated, unrevoked;
-- retired: superseded at retired_at.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    private_key_enc BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activates_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX signing_keys_by_activation ON signing_keys (activates_at);

-- Append-only audit log. dedup_key groups repeated denials into one row with a count.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    tenant_id TEXT,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_key_id TEXT,
    actor_sub TEXT,
    actor_tenant TEXT,
    ip TEXT,
    request_id TEXT,
    target_type TEXT,
    target_id TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 1,
    dedup_key TEXT UNIQUE
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, id);
CREATE INDEX audit_events_by_target ON audit_events (tenant_id, target_id, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

-- Nonces of signed requests, unique per key until they expire.
CREATE TABLE used_nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);

-- Revoked JWT ids, kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- Proof that the configured master key is the one the data was written with.
CREATE TABLE master_key_check (
    id INTEGER PRIMARY KEY NOT NULL,
    master_key_id TEXT NOT NULL,
    check_value BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Named rows whose update opens a transaction that must run alone
-- (bootstrap, signing-key rotation, janitor lease): a row lock on PostgreSQL,
-- the write lock on SQLite.
CREATE TABLE locks (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT,
    held_until TIMESTAMP
);
INSERT INTO locks (name) VALUES ('bootstrap'), ('signing'), ('janitor'), ('master_key'), ('write');
