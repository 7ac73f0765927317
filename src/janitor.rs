//! Housekeeping, run by one replica at a time under a lease: purges nonces
//! past their expiry, revoked token ids once the token's `exp` plus the
//! verification leeway has passed (until then a verifier still accepts the
//! token, so its denial must stay), signing keys no token can need any more,
//! and audit events past retention.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::config::Settings;
use crate::db::schema::{audit_events, locks, revoked_tokens, signing_keys, used_nonces};
use crate::db::{AnyConnection, DbError};
use crate::tokens::signing::{LEEWAY_S, MAX_TOKEN_TTL_S};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub nonces: usize,
    pub revoked_tokens: usize,
    pub signing_keys: usize,
    pub audit_events: usize,
}

/// Takes (or renews) the janitor lease for `holder`; false when another
/// replica holds it.
fn take_lease(
    conn: &mut AnyConnection,
    holder: &str,
    now: NaiveDateTime,
    length: Duration,
) -> QueryResult<bool> {
    let taken = diesel::update(
        locks::table.filter(locks::name.eq("janitor")).filter(
            locks::held_until
                .is_null()
                .or(locks::held_until.lt(now))
                .or(locks::holder.eq(holder)),
        ),
    )
    .set((locks::holder.eq(holder), locks::held_until.eq(now + length)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// One round; `None` when another replica holds the lease.
pub fn run_once(
    conn: &mut AnyConnection,
    settings: &Settings,
    holder: &str,
    now: NaiveDateTime,
) -> Result<Option<Purged>, DbError> {
    let lease = Duration::seconds(i64::try_from(settings.janitor.interval_s * 2).unwrap_or(120));
    if !take_lease(conn, holder, now, lease)? {
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
    let nonces =
        diesel::delete(used_nonces::table.filter(used_nonces::expires_at.lt(now))).execute(conn)?;
    let still_verifiable = now - Duration::seconds(LEEWAY_S);
    let revoked_tokens = diesel::delete(
        revoked_tokens::table.filter(revoked_tokens::expires_at.lt(still_verifiable)),
    )
    .execute(conn)?;
    // A retired key is needed until every token it signed has expired and
    // every cached JWKS has been refetched; a revoked one only as a record.
    let published_for = Duration::seconds(
        MAX_TOKEN_TTL_S + LEEWAY_S + i64::try_from(settings.signing.jwks_max_age_s).unwrap_or(0),
    );
    let cutoff = now - published_for;
    let signing_keys = diesel::delete(
        signing_keys::table.filter(
            signing_keys::retired_at
                .lt(cutoff)
                .or(signing_keys::revoked_at.lt(cutoff)),
        ),
    )
    .execute(conn)?;
    let retention = Duration::days(i64::from(settings.audit.retention_days));
    let audit_events =
        diesel::delete(audit_events::table.filter(audit_events::at.lt(now - retention)))
            .execute(conn)?;
    Ok(Purged {
        nonces,
        revoked_tokens,
        signing_keys,
        audit_events,
    })
}
