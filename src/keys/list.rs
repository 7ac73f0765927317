//! Listing and searching a tenant's keys, one sealed-cursor page at a time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::crypto::master::MasterKey;
use crate::db;
use crate::error::ApiError;
use crate::keys::request::ListKeys;
use crate::keys::service::Deps;
use crate::keys::store;
use crate::keys::view::KeyView;
use crate::pagination::{Page, open_cursor};
use crate::powers::{KeyReader, Principal};

#[derive(Debug, Serialize, Deserialize)]
struct CursorPayload {
    /// Tenant id.
    t: String,
    /// Digest of the filters the cursor was made for.
    f: String,
    /// The last id returned.
    k: String,
}

fn filter_digest(parts: &[Option<&str>]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part.unwrap_or("\u{0}").as_bytes());
        ctx.update(b"\x1f");
    }
    URL_SAFE_NO_PAD.encode(&ctx.finish().as_ref()[..12])
}

/// The last id of the page a cursor ends, if it is one this list sealed
/// for this tenant and these filters (`q`, `status`, the narrowed owner).
pub fn cursor_after(
    master: &MasterKey,
    raw: &str,
    tenant_id: &str,
    q: Option<&str>,
    status: Option<&str>,
    owner: Option<&str>,
) -> Option<String> {
    let digest = filter_digest(&[q, status, owner]);
    match open_cursor::<CursorPayload>(master, raw) {
        Some(c) if c.t == tenant_id && c.f == digest => Some(c.k),
        _ => None,
    }
}

/// `GET /api/v1/keys`: newest first, keyset pagination on the id (UUID v7,
/// so creation order), stable under concurrent inserts and deletes.
/// `_reader` is the power to read; it already narrowed `request.owner`
/// (a `keys:self` caller lists only its own keys).
pub async fn list(
    deps: &Deps<'_>,
    principal: &Principal,
    _reader: KeyReader,
    request: ListKeys,
) -> Result<Page<KeyView>, ApiError> {
    let digest = filter_digest(&[
        request.q.as_deref(),
        request.status.as_deref(),
        request.owner.as_deref(),
    ]);
    let limit = request.limit;
    let filter = store::ListFilter {
        tenant_id: principal.tenant.id.clone(),
        q: request.q,
        status: request.status,
        owner: request.owner,
        before_id: request.after,
        limit: limit + 1,
    };
    let now = Utc::now().naive_utc();
    // On the admin lane, within its time bound: a search scans the tenant's
    // keys, and must never hold the token endpoints' connections.
    let rows = db::read(deps.admin_lane, move |conn, bound| {
        store::list_page(conn, bound, &filter, now)
    })
    .await?;
    Ok(Page::of_rows(
        rows,
        limit,
        deps.master,
        |last| CursorPayload {
            t: principal.tenant.id.clone(),
            f: digest,
            k: last.id.clone(),
        },
        |k| KeyView::of(&k, &principal.tenant.slug, &deps.tokens.issuer, now),
    ))
}
