//! The `signing_keys` table: every query the signing floor runs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::crypto::master::Aad;
use crate::db::models::SigningKeyRow;
use crate::db::schema::signing_keys::dsl;
use crate::db::{AnyConnection, DbError};

/// The additional data a row's private part is sealed with.
pub fn aad(kid: &str) -> Aad<'_> {
    Aad {
        table: "signing_keys",
        row_id: kid,
        tenant: "",
    }
}

pub fn load_rows(conn: &mut AnyConnection) -> Result<Vec<SigningKeyRow>, DbError> {
    Ok(dsl::signing_keys
        .select(SigningKeyRow::as_select())
        .order(dsl::activates_at.desc())
        .load(conn)?)
}

pub fn insert(conn: &mut AnyConnection, row: &SigningKeyRow) -> Result<(), DbError> {
    diesel::insert_into(dsl::signing_keys)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn set_activates_at(
    conn: &mut AnyConnection,
    kid: &str,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(dsl::signing_keys.find(kid))
        .set(dsl::activates_at.eq(at))
        .execute(conn)?;
    Ok(())
}

pub fn set_retired_at(
    conn: &mut AnyConnection,
    kid: &str,
    at: Option<NaiveDateTime>,
) -> Result<(), DbError> {
    diesel::update(dsl::signing_keys.find(kid))
        .set(dsl::retired_at.eq(at))
        .execute(conn)?;
    Ok(())
}

pub fn mark_revoked(
    conn: &mut AnyConnection,
    kid: &str,
    revoked_at: NaiveDateTime,
    retired_at: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(dsl::signing_keys.find(kid))
        .set((
            dsl::revoked_at.eq(revoked_at),
            dsl::retired_at.eq(retired_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes the signing keys retired or revoked before `cutoff`; how many
/// went.
pub fn purge_before(conn: &mut AnyConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        dsl::signing_keys.filter(dsl::retired_at.lt(cutoff).or(dsl::revoked_at.lt(cutoff))),
    )
    .execute(conn)
}
