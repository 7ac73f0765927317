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

/// Keys warned per tenant, threshold and scan; the rest wait for the next.
const PER_TENANT: i64 = 500;

/// One scan as of `now`; how many warnings went out. Thresholds are taken
/// nearest first, so a key inside several is warned for the nearest.
pub fn scan(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    let mut sent = 0;
    for (tenant_id, stored) in store::warning_tenants(conn)? {
        let thresholds = parse_warning_days(&stored);
        for &days in thresholds.iter().rev() {
            let Ok(days) = i32::try_from(days) else {
                continue;
            };
            for (key_id, expires_at) in
                store::unwarned_keys(conn, &tenant_id, days, now, PER_TENANT)?
            {
                sent += usize::from(warn(
                    conn,
                    &tenant_id,
                    &key_id,
                    expires_at,
                    &thresholds,
                    now,
                )?);
            }
        }
    }
    Ok(sent)
}

/// Warns of one key for the nearest threshold it is inside, and records
/// every threshold it is inside as warned, in one transaction with the
/// audit event (and so its outbox rows). False when that was done already.
fn warn(
    conn: &mut AnyConnection,
    tenant_id: &str,
    key_id: &str,
    expires_at: NaiveDateTime,
    thresholds: &[i64],
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let left = expires_at - now;
    let crossed: Vec<i32> = thresholds
        .iter()
        .filter(|d| left <= Duration::days(**d))
        .filter_map(|d| i32::try_from(*d).ok())
        .collect();
    let Some(&nearest) = crossed.last() else {
        return Ok(false);
    };
    db::write_transaction(conn, |conn| {
        let first = store::mark_warned(conn, key_id, nearest, expires_at, now)?;
        for &days in &crossed {
            if days != nearest {
                store::mark_warned(conn, key_id, days, expires_at, now)?;
            }
        }
        if !first {
            return Ok::<_, DbError>(false);
        }
        audit::write(
            conn,
            audit::Record {
                tenant_id: Some(tenant_id),
                action: "key.expiring",
                actor: &Actor::system("expiry-warnings"),
                origin: &Origin::default(),
                target_type: "key",
                target_id: key_id,
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
    })
}
