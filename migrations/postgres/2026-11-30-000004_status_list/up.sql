-- Token Status List (draft-ietf-oauth-status-list): every key holds one
-- index, allocated from status_list_state.next_idx and never reused; its
-- tokens name that entry. `version` moves whenever an entry's status may
-- have changed (revocation, deletion, a tenant's switch), in the same
-- transaction, whoever makes the change (API, CLI, another replica): each
-- replica rebuilds its lists when it sees a new version.
ALTER TABLE api_keys ADD COLUMN status_idx BIGINT;

-- Keys made before this migration, in the order they were made.
UPDATE api_keys SET status_idx = numbered.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) - 1 AS n FROM api_keys) AS numbered
WHERE numbered.id = api_keys.id;

CREATE UNIQUE INDEX api_keys_status_idx ON api_keys (status_idx);
-- A rebuild reads only the entries that are not VALID.
CREATE INDEX api_keys_status_invalid ON api_keys (status_idx)
    WHERE revoked_at IS NOT NULL OR deleted_at IS NOT NULL;

CREATE TABLE status_list_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_idx BIGINT NOT NULL,
    version BIGINT NOT NULL
);
INSERT INTO status_list_state (id, next_idx, version) SELECT 1, COUNT(*), 0 FROM api_keys;

CREATE FUNCTION status_list_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE status_list_state SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER status_list_key_changed AFTER UPDATE OF revoked_at, deleted_at ON api_keys
FOR EACH ROW
WHEN ((OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)
   OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
EXECUTE FUNCTION status_list_bump();

CREATE TRIGGER status_list_tenant_changed AFTER UPDATE OF api_keys_enabled ON tenants
FOR EACH ROW
WHEN (OLD.api_keys_enabled IS DISTINCT FROM NEW.api_keys_enabled)
EXECUTE FUNCTION status_list_bump();
