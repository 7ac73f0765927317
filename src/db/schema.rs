// The Diesel view of migrations/{sqlite,postgres}; both backends share it, so
// it uses only the SQL types they have in common. Keep it in step with the
// migrations (`diesel print-schema` against either backend prints the same).

diesel::table! {
    tenants (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        api_keys_enabled -> Bool,
        default_key_lifetime_s -> Nullable<BigInt>,
        max_key_lifetime_s -> Nullable<BigInt>,
        max_keys_per_owner -> BigInt,
        default_token_ttl_s -> BigInt,
        max_token_ttl_s -> BigInt,
        require_ip_allowlist -> Bool,
        allowed_ip_ranges -> Text,
        default_audience -> Text,
        default_rate_limit_per_s -> Double,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expiry_warning_days -> Text,
        leak_response -> Text,
    }
}

diesel::table! {
    tenant_audiences (audience) {
        audience -> Text,
        tenant_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        owner -> Nullable<Text>,
        start -> Text,
        secret_hash -> Nullable<Binary>,
        previous_secret_hash -> Nullable<Binary>,
        previous_expires_at -> Nullable<Timestamp>,
        secret_enc -> Nullable<Binary>,
        previous_secret_enc -> Nullable<Binary>,
        security_level -> Text,
        scopes -> Text,
        audiences -> Text,
        ip_allowlist -> Nullable<Text>,
        max_token_ttl_s -> Nullable<BigInt>,
        rate_limit_per_s -> Nullable<Double>,
        claims -> Nullable<Text>,
        metadata -> Nullable<Text>,
        created_by -> Text,
        parent_key_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        tokens_issued -> BigInt,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        deleted_at -> Nullable<Timestamp>,
        status_idx -> Nullable<BigInt>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        private_key_enc -> Binary,
        created_at -> Timestamp,
        activates_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        tenant_id -> Nullable<Text>,
        action -> Text,
        actor_type -> Text,
        actor_key_id -> Nullable<Text>,
        actor_sub -> Nullable<Text>,
        actor_tenant -> Nullable<Text>,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        outcome -> Text,
        details -> Text,
        count -> BigInt,
        dedup_key -> Nullable<Text>,
    }
}

diesel::table! {
    used_nonces (key_id, nonce) {
        key_id -> Text,
        nonce -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        tenant_id -> Text,
        key_id -> Text,
        expires_at -> Timestamp,
        revoked_at -> Timestamp,
    }
}

diesel::table! {
    master_key_check (id) {
        id -> Integer,
        master_key_id -> Text,
        check_value -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    locks (name) {
        name -> Text,
        holder -> Nullable<Text>,
        held_until -> Nullable<Timestamp>,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(event_outbox -> event_streams (stream_id));
diesel::joinable!(tenant_audiences -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    tenant_audiences,
    api_keys,
    signing_keys,
    audit_events,
    used_nonces,
    revoked_tokens,
    master_key_check,
    locks,
    event_streams,
    event_outbox,
    expiry_warnings,
);

diesel::table! {
    status_list_state (id) {
        id -> Integer,
        next_idx -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    event_streams (id) {
        id -> Text,
        tenant_id -> Text,
        endpoint -> Text,
        audience -> Text,
        events -> Nullable<Text>,
        enabled -> Bool,
        paused_until -> Nullable<Timestamp>,
        bearer_secret -> Nullable<Binary>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    event_outbox (id) {
        id -> Text,
        stream_id -> Text,
        tenant_id -> Text,
        event_type -> Text,
        subject_id -> Nullable<Text>,
        txn -> Nullable<Text>,
        occurred_at -> Timestamp,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_attempt_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    expiry_warnings (key_id, days, expires_at) {
        key_id -> Text,
        days -> Integer,
        expires_at -> Timestamp,
        sent_at -> Timestamp,
    }
}

diesel::table! {
    leak_reports (token_prefix, url_prefix) {
        token_prefix -> Text,
        url_prefix -> Text,
        key_id -> Text,
        reported_at -> Timestamp,
    }
}
