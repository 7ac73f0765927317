//! Housekeeping removes only what has expired.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use keymint::db::models::AuditEvent;
use keymint::db::schema::{audit_events, revoked_tokens, used_nonces};

use crate::backend_tests;
use crate::helpers::{Backend, spawn_app_with};

backend_tests!(the_janitor_purges_only_what_expired);

fn event(id: &str, at: chrono::NaiveDateTime) -> AuditEvent {
    AuditEvent {
        id: id.to_owned(),
        at,
        tenant_id: None,
        action: "key.created".into(),
        actor_type: "system".into(),
        actor_key_id: None,
        actor_sub: None,
        actor_tenant: None,
        ip: None,
        request_id: None,
        target_type: None,
        target_id: None,
        outcome: "success".into(),
        details: "{}".into(),
        count: 1,
        dedup_key: None,
    }
}

async fn the_janitor_purges_only_what_expired(backend: Backend) {
    let app = spawn_app_with(
        backend,
        "[janitor]\ninterval_s = 1\n[audit]\nretention_days = 30\n",
    )
    .await;
    let now = Utc::now().naive_utc();
    let old = now - chrono::Duration::days(31);
    let mut conn = app.db.connect();
    // (Multi-backend connections insert one row at a time.)
    for e in [
        event("00000000-0000-7000-8000-000000000001", old),
        event("00000000-0000-7000-8000-000000000002", now),
    ] {
        diesel::insert_into(audit_events::table)
            .values(&e)
            .execute(&mut conn)
            .unwrap();
    }
    for (nonce, offset) in [("gone", -1), ("kept", 300)] {
        diesel::insert_into(used_nonces::table)
            .values((
                used_nonces::key_id.eq("k"),
                used_nonces::nonce.eq(nonce),
                used_nonces::expires_at.eq(now + chrono::Duration::seconds(offset)),
            ))
            .execute(&mut conn)
            .unwrap();
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(nonce),
                revoked_tokens::tenant_id.eq("t"),
                revoked_tokens::key_id.eq("k"),
                revoked_tokens::expires_at.eq(now + chrono::Duration::seconds(offset)),
                revoked_tokens::revoked_at.eq(now),
            ))
            .execute(&mut conn)
            .unwrap();
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let nonces: Vec<String> = used_nonces::table
            .select(used_nonces::nonce)
            .load(&mut conn)
            .unwrap();
        let jtis: Vec<String> = revoked_tokens::table
            .select(revoked_tokens::jti)
            .load(&mut conn)
            .unwrap();
        let events: Vec<String> = audit_events::table
            .filter(audit_events::id.like("00000000-%"))
            .select(audit_events::id)
            .load(&mut conn)
            .unwrap();
        if nonces == ["kept"]
            && jtis == ["kept"]
            && events == ["00000000-0000-7000-8000-000000000002"]
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{nonces:?} {jtis:?} {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The bootstrap's own events, written just now, stay.
    let recent: i64 = audit_events::table.count().get_result(&mut conn).unwrap();
    assert!(recent >= 2);
}
