//! The `q` of a key list: one match rule on both backends, served by a
//! trigram index when the term is long enough to have trigrams.
//!
//! The rule: `q` is a substring of the name, id or owner, ignoring the case
//! of ASCII letters only (other characters match themselves). It is what
//! SQLite's `lower()` and `LIKE` do; PostgreSQL does the same under the "C"
//! collation, whatever the database's locale. The indexes fold more than
//! that (Unicode), so they only narrow the candidates: every row returned
//! passes the rule itself.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use crate::db::schema::api_keys;
use crate::db::{AnyConnection, ReadBound};

type Db = <AnyConnection as Connection>::Backend;

/// A condition on `api_keys` rows, for a boxed key list.
pub type Condition = Box<dyn BoxableExpression<api_keys::table, Db, SqlType = Bool>>;

/// Shorter terms have no trigram: a scan (within the lane's time bound)
/// serves them.
const MIN_INDEXED_CHARS: usize = 3;

/// SQLite: up to this many index matches (in all tenants), fetching them
/// and sorting beats walking the tenant's keys in id order; past it the
/// term is common and that walk finds a page early.
const FEW_MATCHES: i64 = 5_000;

diesel::table! {
    /// SQLite's FTS5 trigram index over `api_keys` (external content, kept
    /// in step by triggers); only its rowid is read here.
    api_keys_search (rowid) {
        rowid -> BigInt,
    }
}

/// The rule as a `LIKE` pattern: `%`, `_` and `\` in `q` are literals.
fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.push('%');
    out
}

/// An FTS5 query for the rows holding every trigram of `q`, each quoted
/// as an FTS5 string (nothing of the query language). Not the phrase of
/// `q`: a phrase checks positions, which costs seconds on rows made of one
/// repeated trigram; the rule checks the rest.
fn fts_query(q: &str) -> String {
    let chars: Vec<char> = q.chars().collect();
    let mut trigrams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    trigrams.sort_unstable();
    trigrams.dedup();
    trigrams
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The rule, as the PostgreSQL indexes' expressions spell it (the planner
/// matches them literally).
fn rule(sqlite: bool, q: &str) -> Condition {
    let pattern = like_pattern(q);
    let collate = if sqlite { "" } else { " COLLATE \"C\"" };
    let column = |name: &str| format!("lower(api_keys.{name}{collate}) LIKE ");
    Box::new(
        sql::<Bool>("(")
            .sql(&column("name"))
            .bind::<Text, _>(pattern.clone())
            .sql(" ESCAPE '\\' OR ")
            .sql(&column("id"))
            .bind::<Text, _>(pattern.clone())
            .sql(" ESCAPE '\\' OR ")
            .sql(&column("owner"))
            .bind::<Text, _>(pattern)
            .sql(" ESCAPE '\\')"),
    )
}

/// How a list finds the keys `q` matches.
pub struct Plan {
    /// Conditions for the list query.
    pub conditions: Vec<Condition>,
    /// SQLite only: the candidates are a short list of rowids, to be
    /// fetched by rowid. The tenant condition must then not be one an index
    /// can serve, or the planner walks the tenant's keys in id order (no
    /// sort) and tests each against the list.
    pub by_rowid: bool,
}

/// The conditions that find the keys `q` matches. On PostgreSQL the
/// planner picks between the trigram indexes and the walk in id order
/// (the query is never a cached generic plan: a raw fragment keeps Diesel
/// from preparing it once for all terms). SQLite's planner cannot weigh a
/// full-text match, so a bounded read of the index decides: few
/// candidates are fetched by rowid, many mean the walk in id order finds a
/// page early.
pub fn plan(conn: &mut AnyConnection, bound: &ReadBound, q: &str) -> QueryResult<Plan> {
    let sqlite = conn.is_sqlite();
    let mut plan = Plan {
        conditions: vec![rule(sqlite, q)],
        by_rowid: false,
    };
    // A NUL would end the FTS5 query text early.
    if sqlite && q.chars().count() >= MIN_INDEXED_CHARS && !q.contains('\0') {
        let rowids = candidates(conn, bound, &fts_query(q))?;
        if i64::try_from(rowids.len()).unwrap_or(i64::MAX) <= FEW_MATCHES {
            let list = serde_json::to_string(&rowids).unwrap_or_else(|_| "[]".to_owned());
            plan.conditions.push(Box::new(
                sql::<Bool>("api_keys.rowid IN (SELECT value FROM json_each(")
                    .bind::<Text, _>(list)
                    .sql("))"),
            ));
            plan.by_rowid = true;
        }
    }
    Ok(plan)
}

/// The tenant condition for a [`Plan::by_rowid`] list: the unary `+` keeps
/// every index on `tenant_id` out of the plan.
pub fn tenant_unindexed(tenant_id: &str) -> Condition {
    Box::new(sql::<Bool>("+api_keys.tenant_id = ").bind::<Text, _>(tenant_id.to_owned()))
}

/// The rowids the index holds for `query` (all tenants), at most one past
/// [`FEW_MATCHES`].
fn candidates(conn: &mut AnyConnection, bound: &ReadBound, query: &str) -> QueryResult<Vec<i64>> {
    let mut probe = api_keys_search::table
        .select(api_keys_search::rowid)
        .filter(sql::<Bool>("api_keys_search MATCH ").bind::<Text, _>(query.to_owned()))
        .limit(FEW_MATCHES + 1)
        .into_boxed();
    if let Some(guard) = bound.sqlite_guard() {
        probe = probe.filter(guard);
    }
    probe.load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_fold_ascii_only_and_escape_like() {
        assert_eq!(like_pattern("AbC"), "%abc%");
        assert_eq!(like_pattern("É%_\\x"), "%É\\%\\_\\\\x%");
    }

    #[test]
    fn fts_queries_are_quoted_distinct_trigrams() {
        assert_eq!(fts_query("a\"bOR"), r#""""bO" AND "a""b" AND "bOR""#);
        assert_eq!(fts_query("aaaaé"), "\"aaa\" AND \"aaé\"");
    }
}
