//! The security events keymint sends (RFC 8417 Security Event Tokens), the
//! names receivers subscribe to, and the tenant's answer to a leaked key.

use std::fmt;

/// keymint's own event URIs start with this.
pub const URI_PREFIX: &str = "urn:keymint:event:";

/// The CAEP "credential change" event (OpenID Shared Signals, CAEP 1.0
/// §3.2): sent beside keymint's own for the key events it describes.
pub const CAEP_CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";

/// The media type of a SET (RFC 8417 §2.3) and its JWT `typ`.
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";
pub const SET_TYP: &str = "secevent+jwt";

/// What happened. Each is one event URI, `urn:keymint:event:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    KeyCreated,
    KeyRevoked,
    KeyRotated,
    KeyDeleted,
    KeyExpiring,
    KeyLeaked,
    TenantApiKeysDisabled,
    TenantApiKeysEnabled,
    SigningKeyRotated,
    SigningKeyRevoked,
}

impl EventType {
    pub const ALL: [Self; 10] = [
        Self::KeyCreated,
        Self::KeyRevoked,
        Self::KeyRotated,
        Self::KeyDeleted,
        Self::KeyExpiring,
        Self::KeyLeaked,
        Self::TenantApiKeysDisabled,
        Self::TenantApiKeysEnabled,
        Self::SigningKeyRotated,
        Self::SigningKeyRevoked,
    ];

    /// The short name, as stored: `key-revoked`.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeyCreated => "key-created",
            Self::KeyRevoked => "key-revoked",
            Self::KeyRotated => "key-rotated",
            Self::KeyDeleted => "key-deleted",
            Self::KeyExpiring => "key-expiring",
            Self::KeyLeaked => "key-leaked",
            Self::TenantApiKeysDisabled => "tenant-api-keys-disabled",
            Self::TenantApiKeysEnabled => "tenant-api-keys-enabled",
            Self::SigningKeyRotated => "signing-key-rotated",
            Self::SigningKeyRevoked => "signing-key-revoked",
        }
    }

    pub fn uri(self) -> String {
        format!("{URI_PREFIX}{}", self.name())
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        uri.strip_prefix(URI_PREFIX).and_then(Self::from_name)
    }

    /// The audit action an event of this type reports, and back: every
    /// event is written where its audit event is, in the same transaction.
    pub fn of_action(action: &str) -> Option<Self> {
        Some(match action {
            "key.created" => Self::KeyCreated,
            "key.revoked" => Self::KeyRevoked,
            "key.rotated" => Self::KeyRotated,
            "key.deleted" => Self::KeyDeleted,
            "key.expiring" => Self::KeyExpiring,
            "key.leaked" => Self::KeyLeaked,
            "signing_key.rotated" => Self::SigningKeyRotated,
            "signing_key.revoked" => Self::SigningKeyRevoked,
            _ => return None,
        })
    }

    /// CAEP's `change_type` for the key events it has a name for.
    pub fn caep_change_type(self) -> Option<&'static str> {
        match self {
            Self::KeyCreated => Some("create"),
            Self::KeyRevoked => Some("revoke"),
            Self::KeyRotated => Some("update"),
            Self::KeyDeleted => Some("delete"),
            _ => None,
        }
    }

    /// Signing keys serve every tenant: their events go to every stream.
    pub fn is_global(self) -> bool {
        matches!(self, Self::SigningKeyRotated | Self::SigningKeyRevoked)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a leak report that matches one of the tenant's keys does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakResponse {
    /// Revoke the key at once (the default).
    Revoke,
    /// Only record it and send `key-leaked`.
    Notify,
}

impl LeakResponse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Notify => "notify",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "revoke" => Some(Self::Revoke),
            "notify" => Some(Self::Notify),
            _ => None,
        }
    }
}

/// At most this many expiry thresholds per tenant, each 1..=3650 days.
pub const MAX_EXPIRY_WARNINGS: usize = 10;
pub const MAX_EXPIRY_WARNING_DAYS: i64 = 3650;

/// The thresholds as stored: distinct, largest first.
pub fn normalize_warning_days(days: &[i64]) -> Vec<i64> {
    let mut out: Vec<i64> = days.to_vec();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

/// Reads the stored JSON list; anything unreadable is no warnings.
pub fn parse_warning_days(json: &str) -> Vec<i64> {
    serde_json::from_str::<Vec<i64>>(json)
        .map(|d| normalize_warning_days(&d))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_uri(&t.uri()), Some(t));
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
        assert_eq!(EventType::KeyRevoked.uri(), "urn:keymint:event:key-revoked");
        assert_eq!(EventType::from_uri("urn:keymint:event:nope"), None);
        assert_eq!(EventType::from_uri("key-revoked"), None);
    }

    #[test]
    fn warning_days_are_distinct_and_largest_first() {
        assert_eq!(normalize_warning_days(&[1, 30, 7, 7]), [30, 7, 1]);
        assert_eq!(parse_warning_days("[7,30]"), [30, 7]);
        assert!(parse_warning_days("nonsense").is_empty());
    }
}
