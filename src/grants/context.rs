//! The borrowed slice of the server the grant services work with.

use std::sync::Arc;

use crate::config::{StatusListSettings, TokenSettings};
use crate::crypto::master::MasterKey;
use crate::db::{InlineReads, Pool};
use crate::keys::store::KeyLookups;
use crate::limits::Limiter;
use crate::tokens::signing::KeyRing;
use crate::usage::Usage;

/// What the grants need of the running server, lent for one request by
/// the HTTP floor (which holds the whole state): the services never see
/// more than this.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub pool: &'a Pool,
    /// The token endpoints' lookups, inline on SQLite (`db::point_read`).
    pub inline: &'a InlineReads,
    /// The token endpoints' lookups, batched per worker on PostgreSQL.
    pub lookups: Option<&'a KeyLookups>,
    /// Checks signed requests (advanced keys' secrets are sealed under it).
    pub master: &'a Arc<MasterKey>,
    /// Signs issued tokens; verifies those presented for introspection
    /// and revocation.
    pub keyring: &'a KeyRing,
    /// Per-key buckets and the failed-authentication guard per address.
    pub limiter: &'a Arc<Limiter>,
    /// Counts each issue in memory.
    pub usage: &'a Usage,
    pub tokens: &'a TokenSettings,
    /// The status lists' `ttl`, which a key revocation's audit event cites.
    pub statuslist: &'a StatusListSettings,
}
