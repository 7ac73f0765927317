DROP INDEX api_keys_search_owner;
DROP INDEX api_keys_search_id;
DROP INDEX api_keys_search_name;
