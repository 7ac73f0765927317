//! Database work on what the grants remember about tokens and requests:
//! revoked token ids (`revoked_tokens`) and the nonces of signed requests
//! (`used_nonces`). The services above decide; only this file builds
//! their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use crate::audit::{self, Actor, Origin};
use crate::db::schema::{revoked_tokens, used_nonces};
use crate::db::{self, AnyConnection};

/// Whether the token with this jti was revoked.
pub fn is_revoked(conn: &mut AnyConnection, jti: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        revoked_tokens::table.filter(revoked_tokens::jti.eq(jti)),
    ))
    .get_result(conn)
}

/// A token to deny until it would have expired anyway.
pub struct Revocation<'a> {
    pub jti: &'a str,
    pub tenant_id: &'a str,
    pub key_id: &'a str,
    /// The token's `exp`, as written in the audit event.
    pub exp: i64,
    /// When the row may go (the token's `exp`).
    pub expires_at: NaiveDateTime,
}

/// Records a token's revocation with its `token.revoked` event, in one
/// transaction. Revoking a revoked token changes nothing and writes no
/// second event.
pub fn revoke_token(
    conn: &mut AnyConnection,
    revocation: &Revocation<'_>,
    actor: &Actor,
    origin: &Origin,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let written = db::write_transaction(conn, |conn| {
        if is_revoked(conn, revocation.jti)? {
            return Ok(());
        }
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(revocation.jti),
                revoked_tokens::tenant_id.eq(revocation.tenant_id),
                revoked_tokens::key_id.eq(revocation.key_id),
                revoked_tokens::expires_at.eq(revocation.expires_at),
                revoked_tokens::revoked_at.eq(now),
            ))
            .execute(conn)?;
        audit::write(
            conn,
            audit::Record {
                tenant_id: Some(revocation.tenant_id),
                action: "token.revoked",
                actor,
                origin,
                target_type: "token",
                target_id: revocation.jti,
                success: true,
                details: serde_json::json!({ "exp": revocation.exp }),
            },
            now,
        )
    });
    match written {
        // A concurrent revocation of the same token won the insert.
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(()),
        other => other,
    }
}

/// Records a signed request's nonce for its key until `expires_at`; false
/// when the key already used it (a replay).
pub fn record_nonce(
    conn: &mut AnyConnection,
    key_id: &str,
    nonce: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(used_nonces::table)
        .values((
            used_nonces::key_id.eq(key_id),
            used_nonces::nonce.eq(nonce),
            used_nonces::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// Deletes the nonces that expired before `before`; how many went.
pub fn purge_nonces(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(used_nonces::table.filter(used_nonces::expires_at.lt(before))).execute(conn)
}

/// Deletes the revocations of tokens that expired before `before`; how
/// many went.
pub fn purge_revocations(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(before)))
        .execute(conn)
}
