-- Security events out (RFC 8417 SETs pushed as RFC 8935) and leak reports in.

-- Per tenant: the days before a key's expiry at which one key-expiring event
-- is sent (a JSON list, e.g. [30, 7, 1]), and what a leak report that
-- matches a key does ("revoke" or "notify").
ALTER TABLE tenants ADD COLUMN expiry_warning_days TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tenants ADD COLUMN leak_response TEXT NOT NULL DEFAULT 'revoke';

-- A tenant's receivers. `events` is a JSON list of event URIs, NULL for all;
-- `bearer_secret` is sealed under the master key (AAD: table, id, tenant).
-- `paused_until`: after a failed push nothing more goes to the receiver
-- until then but one probe, so a receiver that is down costs one timeout per
-- backoff, not a share of every round.
CREATE TABLE event_streams (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    endpoint TEXT NOT NULL,
    audience TEXT NOT NULL,
    events TEXT,
    enabled BOOLEAN NOT NULL,
    paused_until TIMESTAMP,
    bearer_secret BLOB,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX event_streams_tenant ON event_streams (tenant_id, id);

-- One row per event per stream, written in the transaction of the change it
-- reports; `id` is the SET's jti, stable across retries. The worker delivers
-- pending rows whose next_attempt_at has passed.
CREATE TABLE event_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    stream_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    subject_id TEXT,
    txn TEXT,
    occurred_at TIMESTAMP NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP
);
CREATE INDEX event_outbox_due ON event_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX event_outbox_stream ON event_outbox (stream_id, id);

-- Which expiry warnings went out: the primary key makes each (key,
-- threshold, expiry) one event, across replicas and restarts; a key whose
-- expiry moves is warned again for its new one.
CREATE TABLE expiry_warnings (
    key_id TEXT NOT NULL,
    days INTEGER NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, days, expires_at)
);

-- Leak reports acted on: one row per reported token and URL (64 bits of the
-- SHA-256 of each, enough to know a report again and no more), so a report
-- sent again changes nothing, and a secret a report already revoked is
-- still known as a true positive.
CREATE TABLE leak_reports (
    token_prefix TEXT NOT NULL,
    url_prefix TEXT NOT NULL,
    key_id TEXT NOT NULL,
    reported_at TIMESTAMP NOT NULL,
    PRIMARY KEY (token_prefix, url_prefix)
);

INSERT INTO locks (name) VALUES ('events');
