//! Token Status List (draft-ietf-oauth-status-list-20) encoding: a packed
//! array of `bits`-wide statuses, ZLIB-compressed (RFC 1950) and
//! base64url-encoded without padding as the `lst` member.
//!
//! Entry `i` lives in byte `i / (8 / bits)`, packed from the least
//! significant bit up (§4.1): for `bits = 1`, index 0 is bit 0 of byte 0.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// keymint's lists: two bits per entry, enough for SUSPENDED.
pub const BITS: u8 = 2;

/// Entries per list (shard). Fixed: a token names its list by
/// `index / SHARD_SIZE`, so changing it would move every entry.
pub const SHARD_SIZE: u64 = 65_536;

/// The status types of §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Valid = 0,
    Invalid = 1,
    Suspended = 2,
}

/// The `status` claim of a Referenced Token (§6.2): which entry of which
/// list holds its status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusClaim {
    pub status_list: StatusReference,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReference {
    pub idx: u64,
    pub uri: String,
}

/// The URI of list `list_id`: `<issuer>/statuslists/<list_id>`.
pub fn list_uri(issuer: &str, list_id: u64) -> String {
    format!("{}/statuslists/{list_id}", issuer.trim_end_matches('/'))
}

/// The JWT `typ` of a Status List Token (§5.1); never `at+jwt`, so neither
/// kind of token can be passed off as the other.
pub const TOKEN_TYPE: &str = "statuslist+jwt";

/// The media type a Status List Token is served as (§8.1, §14.7).
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";

/// How many lists `next_idx` handed-out indices span: list ids
/// `0..list_count(next_idx)` exist.
pub fn list_count(next_idx: i64) -> u64 {
    match u64::try_from(next_idx) {
        Ok(0) | Err(_) => 0,
        Ok(n) => (n - 1) / SHARD_SIZE + 1,
    }
}

/// Where the lists are published and how long a verifier may keep one: what
/// a revocation's audit event says about when offline verifiers see it.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub issuer: &'a str,
    /// The lists' `ttl` (`statuslist.ttl_s`).
    pub ttl_s: u64,
}

impl Publication<'_> {
    /// `{"uri", "idx", "visible_within_s"}` for the key whose global index
    /// is `index` (`null` for a key that has none). A server's list follows
    /// the database on every request, so a verifier that refetches when its
    /// copy is `ttl` old sees the change within `ttl_s`.
    pub fn entry(&self, index: Option<i64>) -> serde_json::Value {
        match index.and_then(|i| u64::try_from(i).ok()) {
            Some(index) => {
                let claim = StatusClaim::for_index(self.issuer, index);
                serde_json::json!({
                    "uri": claim.status_list.uri,
                    "idx": claim.status_list.idx,
                    "visible_within_s": self.ttl_s,
                })
            }
            None => serde_json::Value::Null,
        }
    }
}

impl StatusClaim {
    /// The claim for the key whose global index is `index`: list
    /// `index / SHARD_SIZE`, entry `index % SHARD_SIZE` in it.
    pub fn for_index(issuer: &str, index: u64) -> Self {
        Self {
            status_list: StatusReference {
                idx: index % SHARD_SIZE,
                uri: list_uri(issuer, index / SHARD_SIZE),
            },
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusListError {
    #[error("bits must be 1, 2, 4 or 8, not {0}")]
    Bits(u64),
    #[error("lst is not base64url without padding")]
    Base64,
    #[error("lst is not a complete ZLIB stream")]
    Zlib,
    #[error("lst decompresses to more than {0} bytes")]
    TooLarge(usize),
}

/// A packed status array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

impl StatusList {
    /// `entries` statuses, all VALID (0x00, the most common value, so unused
    /// indices look like used ones).
    pub fn new(bits: u8, entries: u64) -> Result<Self, StatusListError> {
        check_bits(u64::from(bits))?;
        let per_byte = u64::from(8 / bits);
        let len = usize::try_from(entries.div_ceil(per_byte))
            .map_err(|_| StatusListError::TooLarge(usize::MAX))?;
        Ok(Self {
            bits,
            bytes: vec![0; len],
        })
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// How many entries the array holds.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * u64::from(8 / self.bits)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn locate(&self, index: u64) -> Option<(usize, u32, u8)> {
        let per_byte = u64::from(8 / self.bits);
        let byte = usize::try_from(index / per_byte).ok()?;
        (byte < self.bytes.len()).then(|| {
            let shift = u32::try_from((index % per_byte) * u64::from(self.bits)).unwrap_or(0);
            let mask = u8::MAX >> (8 - self.bits);
            (byte, shift, mask)
        })
    }

    /// The value at `index`, or `None` past the end.
    pub fn get(&self, index: u64) -> Option<u8> {
        let (byte, shift, mask) = self.locate(index)?;
        Some((self.bytes[byte] >> shift) & mask)
    }

    /// Sets `index` to `value` (masked to `bits`); `false` past the end.
    pub fn set(&mut self, index: u64, value: u8) -> bool {
        let Some((byte, shift, mask)) = self.locate(index) else {
            return false;
        };
        let cell = &mut self.bytes[byte];
        *cell = (*cell & !(mask << shift)) | ((value & mask) << shift);
        true
    }

    /// The `lst` member: ZLIB at the best compression (§4.1 recommends it),
    /// base64url without padding.
    pub fn encode(&self) -> String {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(&self.bytes);
        let compressed = encoder.finish().unwrap_or_default();
        URL_SAFE_NO_PAD.encode(compressed)
    }

    /// Reads an `lst`, refusing a stream that inflates past `max_bytes` (a
    /// small compressed list can stand for a huge array) or does not end.
    pub fn decode(bits: u64, lst: &str, max_bytes: usize) -> Result<Self, StatusListError> {
        let bits = check_bits(bits)?;
        let compressed = URL_SAFE_NO_PAD
            .decode(lst)
            .map_err(|_| StatusListError::Base64)?;
        let mut bytes = Vec::new();
        let limit = u64::try_from(max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        ZlibDecoder::new(compressed.as_slice())
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|_| StatusListError::Zlib)?;
        if bytes.len() > max_bytes {
            return Err(StatusListError::TooLarge(max_bytes));
        }
        Ok(Self { bits, bytes })
    }
}

fn check_bits(bits: u64) -> Result<u8, StatusListError> {
    match bits {
        1 | 2 | 4 | 8 => Ok(bits as u8),
        other => Err(StatusListError::Bits(other)),
    }
}

#[cfg(test)]
mod tests;
