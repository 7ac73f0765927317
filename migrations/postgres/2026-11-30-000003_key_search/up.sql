-- Key search served by trigram indexes, one per searched column, on the
-- exact expressions the list query compares: lower() under the "C"
-- collation folds ASCII letters only, as SQLite's lower() does, so both
-- backends answer a search alike whatever the database's locale.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX api_keys_search_name ON api_keys USING gin (lower(name COLLATE "C") gin_trgm_ops);
CREATE INDEX api_keys_search_id ON api_keys USING gin (lower(id COLLATE "C") gin_trgm_ops);
CREATE INDEX api_keys_search_owner ON api_keys USING gin (lower(owner COLLATE "C") gin_trgm_ops);
