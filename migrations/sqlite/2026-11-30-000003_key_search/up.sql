-- Key search served by an index: trigrams of name, id and owner, read
-- straight from api_keys (external content, joined on api_keys' rowid).
-- The index only narrows the candidates; the list query still applies its
-- own LIKE to each, so results never depend on the tokenizer's case folding.
-- An external-content table does not follow api_keys by itself: the
-- triggers below keep it in step. VACUUM may renumber the rowids of a table
-- without an INTEGER PRIMARY KEY: after one, run
-- INSERT INTO api_keys_search(api_keys_search) VALUES('rebuild').
CREATE VIRTUAL TABLE api_keys_search USING fts5(
    name, id, owner,
    content = 'api_keys',
    content_rowid = 'rowid',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO api_keys_search(api_keys_search) VALUES ('rebuild');

CREATE TRIGGER api_keys_search_insert AFTER INSERT ON api_keys BEGIN
    INSERT INTO api_keys_search (rowid, name, id, owner)
    VALUES (new.rowid, new.name, new.id, new.owner);
END;

-- 'delete' must be given the values the row was indexed with.
CREATE TRIGGER api_keys_search_delete AFTER DELETE ON api_keys BEGIN
    INSERT INTO api_keys_search (api_keys_search, rowid, name, id, owner)
    VALUES ('delete', old.rowid, old.name, old.id, old.owner);
END;

-- Only when a searched column changes: usage and status updates touch
-- api_keys far more often than renames do.
CREATE TRIGGER api_keys_search_update AFTER UPDATE OF name, id, owner ON api_keys
WHEN old.name IS NOT new.name OR old.id IS NOT new.id OR old.owner IS NOT new.owner
BEGIN
    INSERT INTO api_keys_search (api_keys_search, rowid, name, id, owner)
    VALUES ('delete', old.rowid, old.name, old.id, old.owner);
    INSERT INTO api_keys_search (rowid, name, id, owner)
    VALUES (new.rowid, new.name, new.id, new.owner);
END;
