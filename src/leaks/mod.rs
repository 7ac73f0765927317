//! Leak reports in: a code host that found keymint secrets in public code
//! posts them (`POST /api/v1/leaks`) in the secret-scanning partner format,
//! a JSON array of `{token, type, url, source}`, signed with its ECDSA key.
//!
//! The signature is checked over the raw body before anything in it is
//! read, so a report that does not verify learns nothing about any token.
//! Each token whose format and checksum hold and that is a key's current or
//! previous secret is a true positive: the key's tenant's `leak_response`
//! revokes it (the default) or only reports it. Either way a `key.leaked`
//! audit event (with the report's URL and source) and a `key-leaked`
//! security event go out, once per key, token and URL however often the
//! report is repeated. The whole report is one transaction.

mod report;
pub mod store;

use std::collections::BTreeSet;
use std::net::IpAddr;

use base64::Engine;
use serde::Serialize;

pub use report::{MAX_BODY, MAX_TOKENS, Reported, parse};

use crate::audit::{self, Actor, Origin};
use crate::config::LeakSettings;
use crate::db::{self, AnyConnection, Pool};
use crate::domain::events::LeakResponse;
use crate::domain::sender_key::SenderKey;
use crate::domain::status_list::Publication;
use crate::domain::text::hex;
use crate::error::ApiError;
use crate::keys::secret::ApiKeySecret;
use crate::keys::store::{self as keys, KeyRevocation};
use crate::limits::{AdminLimiter, address_bucket};
use crate::tenants::store as tenants;

/// The senders' keys and the per-address budget.
pub struct Leaks {
    senders: Vec<SenderKey>,
    limiter: AdminLimiter,
}

impl Leaks {
    /// From settings already validated at load; a key that no longer
    /// parses is left out (and then verifies nothing).
    pub fn new(settings: &LeakSettings) -> Self {
        Self {
            senders: settings
                .sender_keys
                .iter()
                .filter_map(|k| SenderKey::from_pem(&k.key_identifier, &k.key).ok())
                .collect(),
            limiter: AdminLimiter::new(settings.reports_per_s),
        }
    }

    /// 429 once an address has sent more than its share.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.limiter
            .take(&address_bucket(ip))
            .map_err(|retry_after_s| ApiError::TooManyRequests { retry_after_s })
    }

    /// Whether `signature` (base64 DER) is the named sender's over `body`.
    /// Every failure is the same answer.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let refused = || ApiError::Unauthorized {
            detail: "the report is not signed by a configured sender key".to_owned(),
            error: None,
        };
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return Err(refused());
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| refused())?;
        let sender = self
            .senders
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(refused)?;
        if sender.verifies(body, &signature) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// One token's answer, in the partner format.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Hex SHA-256 of the token as reported.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive` or `false_positive`.
    pub label: &'static str,
}

pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub lists: Publication<'a>,
}

/// Answers a verified report, acting on the keys it names.
pub async fn answer(
    deps: &Deps<'_>,
    reported: Vec<Reported>,
    origin: Origin,
) -> Result<Vec<Verdict>, ApiError> {
    let issuer = deps.lists.issuer.to_owned();
    let ttl_s = deps.lists.ttl_s;
    db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let lists = Publication {
                issuer: &issuer,
                ttl_s,
            };
            lock_tenants(conn, &reported)?;
            reported
                .iter()
                .map(|item| judge(conn, item, &origin, &lists))
                .collect::<Result<Vec<_>, ApiError>>()
        })
    })
    .await
}

/// Locks the tenants of every key the report names, in one order (by id)
/// before any is judged: two reports naming keys of the same tenants in
/// other orders would otherwise each hold one lock and wait for the other's
/// (a deadlock, on PostgreSQL). A secret always names the same key, and a
/// key the same tenant, so the set cannot change after this look-up.
fn lock_tenants(conn: &mut AnyConnection, reported: &[Reported]) -> Result<(), ApiError> {
    let hashes: Vec<_> = reported
        .iter()
        .filter_map(|item| ApiKeySecret::parse(&item.token).ok())
        .map(|secret| secret.hash())
        .collect();
    let tenant_ids: BTreeSet<String> = keys::find_many_by_secret_hash(conn, &hashes)?
        .into_iter()
        .flatten()
        .map(|candidate| candidate.key.tenant_id)
        .collect();
    for tenant_id in &tenant_ids {
        tenants::lock(conn, tenant_id)?;
    }
    Ok(())
}

/// One token's verdict, its tenant already locked by [`lock_tenants`].
fn judge(
    conn: &mut AnyConnection,
    item: &Reported,
    origin: &Origin,
    lists: &Publication<'_>,
) -> Result<Verdict, ApiError> {
    let token_hash =
        hex(ring::digest::digest(&ring::digest::SHA256, item.token.as_bytes()).as_ref());
    let verdict = |label| Verdict {
        token_hash: token_hash.clone(),
        token_type: item.kind.clone(),
        label,
    };
    let Ok(secret) = ApiKeySecret::parse(&item.token) else {
        return Ok(verdict("false_positive"));
    };
    let Some(candidate) = keys::find_by_secret_hash(conn, &secret.hash())? else {
        // A previous secret that a leak already revoked is gone from its
        // key; the report that did it is still on record.
        let known = store::known(conn, &token_hash[..16])?;
        return Ok(verdict(if known {
            "true_positive"
        } else {
            "false_positive"
        }));
    };
    let now = chrono::Utc::now().naive_utc();
    let key = candidate.key;
    // A previous secret past its grace period opens nothing any more: the
    // report is recorded, the key keeps working.
    let expired = candidate.via_previous && key.previous_expires_at.is_some_and(|at| at <= now);
    let tenant = tenants::find_by_id(conn, &key.tenant_id)?.ok_or(ApiError::NotFound)?;
    let response = LeakResponse::parse(&tenant.leak_response).unwrap_or(LeakResponse::Revoke);
    let actor = Actor::system("leak-report");
    let url_hash = hex(ring::digest::digest(&ring::digest::SHA256, item.url.as_bytes()).as_ref());
    // What the table keeps of a reported token and URL: 64 bits of each
    // SHA-256, enough to know a report again, nowhere near enough to find
    // the secret.
    let first = store::record(conn, &token_hash[..16], &url_hash[..16], &key.id, now)?;
    if !first {
        return Ok(verdict("true_positive"));
    }
    audit::write(
        conn,
        audit::Record {
            tenant_id: Some(&key.tenant_id),
            action: "key.leaked",
            actor: &actor,
            origin,
            target_type: "key",
            target_id: &key.id,
            success: true,
            details: serde_json::json!({
                "url": item.url,
                "source": item.source,
                "token_type": item.kind,
                "response": response.as_str(),
                "previous_secret": candidate.via_previous,
                "previous_secret_expired": expired,
            }),
        },
        now,
    )?;
    if response == LeakResponse::Revoke && !expired && key.revoked_at.is_none() {
        let reason = format!("leaked: reported by {} at {}", item.source, item.url);
        let reason: String = reason.chars().take(500).collect();
        keys::revoke_cascade(
            conn,
            &key.tenant_id,
            &key,
            &KeyRevocation {
                reason: Some(&reason),
                actor: &actor,
                origin,
                lists: *lists,
                now,
            },
        )?;
    }
    Ok(verdict("true_positive"))
}
