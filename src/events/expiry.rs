//! Expiry warnings: for each tenant's `expiry_warning_days`, one
//! `key-expiring` event per key and threshold. A key found past several
//! thresholds at once (made with a short life, or first seen after a pause)
//! is warned once, for the nearest, and the others count as sent. The
//! `expiry_warnings` row is written with the audit event (and so the
//! outbox rows) in one transaction; its primary key makes a second replica,
//! or a restart, find it sent.

use chrono::{Duration, NaiveDateTime};

use super::store;
use crate::audit::{self, Actor, Origin};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::events::parse_warning_days;

/// Keys looked at per tenant and scan; the rest wait for the next scan.
const PER_TENANT: i64 = 500;

/// One scan as of `now`; how many warnings went out.
pub fn scan(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    let mut sent = 0;
    for (tenant_id, stored) in store::warning_tenants(conn)? {
        let thresholds = parse_warning_days(&stored);
        let Some(&widest) = thresholds.first() else {
            continue;
        };
        let until = now + Duration::days(widest);
        for (key_id, expires_at) in store::expiring_keys(conn, &tenant_id, now, until, PER_TENANT)?
        {
            let left = expires_at - now;
            let crossed: Vec<i32> = thresholds
                .iter()
                .filter(|d| left <= Duration::days(**d))
                .filter_map(|d| i32::try_from(*d).ok())
                .collect();
            let Some(&nearest) = crossed.last() else {
                continue;
            };
            if store::warned(conn, &key_id, nearest, expires_at)? {
                continue;
            }
            let warned = db::write_transaction(conn, |conn| {
                if !store::mark_warned(conn, &key_id, nearest, expires_at, now)? {
                    return Ok::<_, DbError>(false);
                }
                for &days in &crossed {
                    if days != nearest {
                        store::mark_warned(conn, &key_id, days, expires_at, now)?;
                    }
                }
                audit::write(
                    conn,
                    audit::Record {
                        tenant_id: Some(&tenant_id),
                        action: "key.expiring",
                        actor: &Actor::system("expiry-warnings"),
                        origin: &Origin::default(),
                        target_type: "key",
                        target_id: &key_id,
                        success: true,
                        details: serde_json::json!({
                            "days": nearest,
                            "expires_at": expires_at
                                .and_utc()
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        }),
                    },
                    now,
                )?;
                Ok(true)
            })?;
            sent += usize::from(warned);
        }
    }
    Ok(sent)
}
