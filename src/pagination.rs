//! One page of any admin list and the cursor to the next: every list
//! (keys, tenants, audit events, signing keys) answers in this shape.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::master::MasterKey;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page made of `rows`, fetched as `limit + 1`: the extra row only
    /// says that a next page exists. The next cursor is sealed from what
    /// `cursor` takes of the last row kept; `item` makes the answer's items.
    pub fn of_rows<R, C: Serialize>(
        mut rows: Vec<R>,
        limit: i64,
        master: &MasterKey,
        cursor: impl FnOnce(&R) -> C,
        item: impl FnMut(R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(seal_cursor(master, &cursor(last))),
            _ => None,
        };
        Page {
            items: rows.into_iter().map(item).collect(),
            next_cursor,
        }
    }
}

/// Cursors are signed so a client cannot forge one for another tenant or
/// filter set; they are opaque and carry no secret.
pub fn seal_cursor(master: &MasterKey, payload: &impl Serialize) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap_or_default());
    let tag = master.mac(b"list-cursor", body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(&tag[..16]))
}

pub fn open_cursor<T: for<'de> Deserialize<'de>>(master: &MasterKey, cursor: &str) -> Option<T> {
    if cursor.len() > 512 {
        return None;
    }
    let (body, tag) = cursor.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !master.verify_mac(b"list-cursor", body.as_bytes(), &tag) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}
