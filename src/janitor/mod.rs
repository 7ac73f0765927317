//! Housekeeping, run by one replica at a time under a lease: purges nonces
//! past their expiry, revoked token ids once the token's `exp` plus the
//! verification leeway has passed (until then a verifier still accepts the
//! token, so its denial must stay), signing keys no token can need any more,
//! audit events (and the leak reports they record) past retention, and
//! delivered or failed security events past theirs.

use chrono::{Duration, NaiveDateTime};
use diesel::QueryResult;

use crate::audit;
use crate::config::Settings;
use crate::db::{AnyConnection, DbError, lease};
use crate::events::store as events_store;
use crate::grants::store as grants_store;
use crate::leaks::store as leaks_store;
use crate::tokens::signing::store as signing_store;
use crate::tokens::signing::{LEEWAY_S, MAX_TOKEN_TTL_S};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub nonces: usize,
    pub revoked_tokens: usize,
    pub signing_keys: usize,
    pub audit_events: usize,
    pub event_deliveries: usize,
    pub leak_reports: usize,
}

/// One round; `None` when another replica holds the lease.
pub fn run_once(
    conn: &mut AnyConnection,
    settings: &Settings,
    holder: &str,
    now: NaiveDateTime,
) -> Result<Option<Purged>, DbError> {
    let length = Duration::seconds(i64::try_from(settings.janitor.interval_s * 2).unwrap_or(120));
    if !lease::take(conn, "janitor", holder, now, length)? {
        return Ok(None);
    }
    Ok(Some(purge(conn, settings, now)?))
}

/// The purges of one round, as of `now`; the caller holds the lease.
pub fn purge(
    conn: &mut AnyConnection,
    settings: &Settings,
    now: NaiveDateTime,
) -> QueryResult<Purged> {
    let nonces = grants_store::purge_nonces(conn, now)?;
    let still_verifiable = now - Duration::seconds(LEEWAY_S);
    let revoked_tokens = grants_store::purge_revocations(conn, still_verifiable)?;
    // A retired key is needed until every token it signed has expired and
    // every cached JWKS has been refetched; a revoked one only as a record.
    let published_for = Duration::seconds(
        MAX_TOKEN_TTL_S + LEEWAY_S + i64::try_from(settings.signing.jwks_max_age_s).unwrap_or(0),
    );
    let signing_keys = signing_store::purge_before(conn, now - published_for)?;
    let retention = Duration::days(i64::from(settings.audit.retention_days));
    let audit_events = audit::purge_before(conn, now - retention)?;
    let leak_reports = leaks_store::purge_before(conn, now - retention)?;
    let kept = Duration::days(i64::from(settings.events.retention_days));
    let event_deliveries = events_store::purge_before(conn, now - kept)?;
    Ok(Purged {
        nonces,
        revoked_tokens,
        signing_keys,
        audit_events,
        event_deliveries,
        leak_reports,
    })
}
