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
