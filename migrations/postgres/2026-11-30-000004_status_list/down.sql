DROP TRIGGER status_list_tenant_changed ON tenants;
DROP TRIGGER status_list_key_changed ON api_keys;
DROP FUNCTION status_list_bump();
DROP TABLE status_list_state;
DROP INDEX api_keys_status_invalid;
DROP INDEX api_keys_status_idx;
ALTER TABLE api_keys DROP COLUMN status_idx;
