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

/// The token endpoint's one query: key, tenant policy and the tenant's
/// registered audiences together, by the indexed hash of the current or
/// previous secret. Deleted keys never match.
pub fn find_by_secret_hash(
    conn: &mut AnyConnection,
    hash: &SecretHash,
) -> QueryResult<Option<Candidate>> {
    Ok(find_many_by_secret_hash(conn, std::slice::from_ref(hash))?
        .pop()
        .flatten())
}

/// [`find_by_secret_hash`] for many hashes in one query (`= ANY($1)` on
/// PostgreSQL), answered in the order asked; a hash asked twice gets the
/// key twice.
pub fn find_many_by_secret_hash(
    conn: &mut AnyConnection,
    hashes: &[SecretHash],
) -> QueryResult<Vec<Option<Candidate>>> {
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    let bytes: Vec<&[u8]> = hashes.iter().map(SecretHash::as_bytes).collect();
    let matching = api_keys::secret_hash
        .eq_any(bytes.clone())
        .or(api_keys::previous_secret_hash.eq_any(bytes));
    let rows: Vec<(ApiKey, Tenant, String)> = match conn {
        AnyConnection::Sqlite(c) => api_keys::table
            .inner_join(tenants::table)
            .filter(matching)
            .filter(api_keys::deleted_at.is_null())
            .select((
                ApiKey::as_select(),
                Tenant::as_select(),
                sql::<Text>(SQLITE_REGISTERED),
            ))
            .load(c)?,
        AnyConnection::Postgresql(c) => api_keys::table
            .inner_join(tenants::table)
            .filter(matching)
            .filter(api_keys::deleted_at.is_null())
            .select((
                ApiKey::as_select(),
                Tenant::as_select(),
                sql::<Text>(POSTGRES_REGISTERED),
            ))
            .load(c)?,
    };
    let matches = |stored: &Option<Vec<u8>>, hash: &SecretHash| {
        stored
            .as_deref()
            .and_then(SecretHash::from_slice)
            .is_some_and(|stored| stored.ct_eq(hash))
    };
    Ok(hashes
        .iter()
        .map(|hash| {
            let (key, tenant, registered) = rows.iter().find(|(key, _, _)| {
                matches(&key.secret_hash, hash) || matches(&key.previous_secret_hash, hash)
            })?;
            Some(Candidate {
                key: key.clone(),
                tenant: tenant.clone(),
                via_previous: !matches(&key.secret_hash, hash),
                registered_audiences: Some(registered.clone()),
            })
        })
        .collect())
}
