//! The token endpoints' lookups: a key, its tenant and the tenant's
//! registered audiences, by the hash of a presented secret.

use diesel::prelude::*;

use crate::db::models::{ApiKey, Tenant};
use crate::db::schema::{api_keys, tenants};
use crate::db::{self, AnyConnection};
use crate::keys::secret::SecretHash;

/// A key and its tenant, found by the hash of a presented secret.
pub struct Candidate {
    pub key: ApiKey,
    pub tenant: Tenant,
    /// The secret matched the previous one (rotation grace).
    pub via_previous: bool,
    /// The tenant's registered audiences (space-separated: an audience
    /// holds no whitespace), when they were read with the key: the
    /// exchange then checks its audience without a second query.
    pub registered_audiences: Option<String>,
}

impl Candidate {
    /// Whether the tenant registers `audience`, if read with the key.
    pub fn registers(&self, audience: &str) -> Option<bool> {
        self.registered_audiences
            .as_deref()
            .map(|all| all.split(' ').any(|registered| registered == audience))
    }
}

/// The tenant's registered audiences as one text, read with its key. The
/// aggregate is each backend's own; an audience holds no whitespace, so a
/// space separates them unambiguously.
const SQLITE_REGISTERED: &str = "(SELECT coalesce(group_concat(audience, ' '), '') \
     FROM tenant_audiences WHERE tenant_audiences.tenant_id = tenants.id)";
const POSTGRES_REGISTERED: &str = "(SELECT coalesce(string_agg(audience, ' '), '') \
     FROM tenant_audiences WHERE tenant_audiences.tenant_id = tenants.id)";

/// The token endpoints' lookups on PostgreSQL, batched per worker.
pub type KeyLookups = db::Batched<SecretHash, Candidate>;

/// The tenant's registered audiences as one text, selected with its key:
/// a fixed SQL text per backend (the aggregate is each backend's own) with a
/// static query id, so the statement stays prepared. `diesel::dsl::sql`
/// would make Diesel prepare the whole query again on every call.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct Registered;

impl diesel::Expression for Registered {
    type SqlType = diesel::sql_types::Text;
}

impl<QS> diesel::SelectableExpression<QS> for Registered {}

impl<QS> diesel::AppearsOnTable<QS> for Registered {}

impl<GB> diesel::expression::ValidGrouping<GB> for Registered {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for Registered {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql(SQLITE_REGISTERED);
        Ok(())
    }
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for Registered {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.push_sql(POSTGRES_REGISTERED);
        Ok(())
    }
}

/// Key, tenant and the tenant's registered audiences for the live keys
/// `$matching` selects, on the concrete connection (see `on_backend!`).
macro_rules! candidates {
    ($conn:expr, $matching:expr) => {
        $crate::on_backend!($conn, |c| api_keys::table
            .inner_join(tenants::table)
            .filter($matching)
            .filter(api_keys::deleted_at.is_null())
            .select((ApiKey::as_select(), Tenant::as_select(), Registered))
            .load::<(ApiKey, Tenant, String)>(c))
    };
}

/// The token endpoint's one query: key, tenant policy and the tenant's
/// registered audiences together, by the indexed hash of the current or
/// previous secret. Deleted keys never match. A plain `=` (not the batch's
/// `IN`), so SQLite reuses its prepared statement: Diesel prepares an `IN`
/// list afresh on every call.
pub fn find_by_secret_hash(
    conn: &mut AnyConnection,
    hash: &SecretHash,
) -> QueryResult<Option<Candidate>> {
    let bytes = hash.as_bytes();
    let rows = candidates!(
        conn,
        api_keys::secret_hash
            .eq(bytes)
            .or(api_keys::previous_secret_hash.eq(bytes))
    )?;
    Ok(rows.into_iter().find_map(|row| candidate_for(row, hash)))
}

/// [`find_by_secret_hash`] for many hashes in one query (`= ANY($1)` on
/// PostgreSQL), answered in the order asked; a hash asked twice gets the
/// key twice.
pub fn find_many_by_secret_hash(
    conn: &mut AnyConnection,
    hashes: &[SecretHash],
) -> QueryResult<Vec<Option<Candidate>>> {
    let bytes: Vec<&[u8]> = hashes.iter().map(SecretHash::as_bytes).collect();
    let rows = candidates!(
        conn,
        api_keys::secret_hash
            .eq_any(bytes.clone())
            .or(api_keys::previous_secret_hash.eq_any(bytes))
    )?;
    Ok(hashes
        .iter()
        .map(|hash| {
            let row = rows.iter().find(|(key, _, _)| holds(key, hash))?;
            candidate_for(row.clone(), hash)
        })
        .collect())
}

/// Whether `stored` (a hash column) is `hash`.
fn is(stored: &Option<Vec<u8>>, hash: &SecretHash) -> bool {
    stored
        .as_deref()
        .and_then(SecretHash::from_slice)
        .is_some_and(|stored| stored.ct_eq(hash))
}

/// Whether `key`'s current or previous secret hashes to `hash`.
fn holds(key: &ApiKey, hash: &SecretHash) -> bool {
    is(&key.secret_hash, hash) || is(&key.previous_secret_hash, hash)
}

/// The candidate `row` is for `hash`, if its key holds it.
fn candidate_for(row: (ApiKey, Tenant, String), hash: &SecretHash) -> Option<Candidate> {
    let (key, tenant, registered) = row;
    if !holds(&key, hash) {
        return None;
    }
    Some(Candidate {
        via_previous: !is(&key.secret_hash, hash),
        key,
        tenant,
        registered_audiences: Some(registered),
    })
}
