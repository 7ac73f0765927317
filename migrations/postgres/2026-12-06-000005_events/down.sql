DELETE FROM locks WHERE name = 'events';
DROP TABLE leak_reports;
DROP TABLE expiry_warnings;
DROP TABLE event_outbox;
DROP TABLE event_streams;
ALTER TABLE tenants DROP COLUMN leak_response;
ALTER TABLE tenants DROP COLUMN expiry_warning_days;
