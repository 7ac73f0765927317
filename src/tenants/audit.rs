//! Reading a tenant's audit log, one sealed-cursor page at a time.

use serde::{Deserialize, Serialize};

use crate::audit::{self, EventView, Filter};
use crate::crypto::master::MasterKey;
use crate::db::{self, AdminLane, models::Tenant};
use crate::error::ApiError;
use crate::pagination::{Page, open_cursor};
use crate::powers::Auditor;

/// What a cursor carries: the tenant, the filters it was made for, and the
/// last event id of its page.
#[derive(Serialize, Deserialize)]
struct AuditCursor {
    t: String,
    f: String,
    k: String,
}

/// A checked request for one page of events.
pub struct ListEvents {
    /// The filters; `before_id` comes from the cursor.
    pub filter: Filter,
    pub limit: i64,
    /// The digest of the filters as sent, which a cursor must repeat.
    pub digest: String,
}

/// The digest a cursor is bound to: the filters exactly as sent.
pub fn filter_digest(parts: [&Option<String>; 5]) -> String {
    let [action, key_id, actor, since, until] = parts;
    format!("{action:?}|{key_id:?}|{actor:?}|{since:?}|{until:?}")
}

/// The last id of the page a cursor ends, if it is one this list sealed for
/// `tenant_id` and these filters.
pub fn cursor_before(
    master: &MasterKey,
    raw: &str,
    tenant_id: &str,
    digest: &str,
) -> Option<String> {
    open_cursor::<AuditCursor>(master, raw)
        .filter(|c| c.t == tenant_id && c.f == digest)
        .map(|c| c.k)
}

/// A page of `tenant`'s events, newest first, on the admin lane.
pub async fn list(
    lane: &AdminLane,
    master: &MasterKey,
    _auditor: Auditor,
    tenant: &Tenant,
    request: ListEvents,
) -> Result<Page<EventView>, ApiError> {
    let ListEvents {
        filter,
        limit,
        digest,
    } = request;
    let tenant_id = tenant.id.clone();
    let rows = db::read(lane, move |conn, bound| {
        audit::list(conn, &tenant_id, &filter, limit + 1, bound)
    })
    .await?;
    Ok(Page::of_rows(
        rows,
        limit,
        master,
        |last| AuditCursor {
            t: tenant.id.clone(),
            f: digest,
            k: last.id.clone(),
        },
        |e| EventView::of(e, Some(&tenant.slug)),
    ))
}
