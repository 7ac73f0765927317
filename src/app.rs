//! The state every request handler, extractor and background loop shares:
//! built once at start-up (`startup::Application`) and handed to actix as
//! `web::Data<AppState>`. Each member is behind an `Arc` (or is a pool,
//! itself a handle) because actix clones the state into every worker thread
//! and the background loops hold their own clone.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::audit::denials::AdminDenials;
use crate::config::Settings;
use crate::crypto::master::MasterKey;
use crate::db::{self, Pool};
use crate::limits::{AdminLimiter, Limiter};
use crate::status_lists::StatusLists;
use crate::tokens::signing::KeyRing;
use crate::usage::Usage;

/// What every handler can reach.
pub struct AppState {
    /// The configuration the server started with (the bound address filled
    /// in). Read everywhere: token lifetimes, limits, the issuer, database
    /// timeouts; never changed while running, hence shared rather than cloned.
    pub settings: Arc<Settings>,
    /// Database connections for the token endpoints and every admin write.
    /// Shared so all workers draw on the one `database.max_connections`
    /// budget; the readiness probe and the metrics gauge read it too.
    pub pool: Pool,
    /// The signing keys loaded from the database: the exchange signs with it,
    /// the admin extractor and introspection verify with it, the JWKS route
    /// publishes it. One per replica so the periodic reload (see
    /// `tokens::signing::reload`) swaps keys for every worker at once.
    pub keyring: Arc<KeyRing>,
    /// Key usage (`last_used_at`, `tokens_issued`) counted in memory by the
    /// exchange and flushed in batches by the background loop and at
    /// shutdown, so issuing a token never writes to the database.
    pub usage: Arc<Usage>,
    /// Refused admin requests, counted in memory and flushed with usage.
    /// Recorded by the admin middleware on every worker, hence shared.
    pub denials: Arc<AdminDenials>,
    /// The master key: seals signing keys and API-key secrets at rest and
    /// authenticates list cursors. Used by the key service and the exchange,
    /// the list routes and the signing reload; readiness reports when it is
    /// behind a rotation.
    pub master: Arc<MasterKey>,
    /// Per-key exchange buckets and the failed-authentication guard per
    /// client address. Shared so a key's rate and a guesser's budget hold
    /// across all workers of this replica.
    pub limiter: Arc<Limiter>,
    /// Admin-API requests per calling key (`limits.admin_per_s`), checked by
    /// the admin extractor; apart from `limiter` so administering never
    /// spends a key's exchange budget.
    pub admin_limiter: Arc<AdminLimiter>,
    /// Connections of their own for admin lists and searches, so they never
    /// take `pool`'s from the token endpoints.
    pub admin_lane: Arc<db::AdminLane>,
    /// On SQLite, each worker's own read connection for the token
    /// endpoints' lookups, so they run without a hop to the blocking pool.
    pub inline: Arc<db::InlineReads>,
    /// On PostgreSQL, the token endpoints' lookups go to a database thread
    /// per worker that batches them (`db::Batched`).
    pub lookups: Option<Arc<crate::keys::store::KeyLookups>>,
    /// This replica's Token Status Lists, signed and held in memory; the
    /// list route serves them (rebuilding first when the database moved on)
    /// and the background loop keeps them fresh.
    pub status_lists: Arc<StatusLists>,
    /// Security events out: the receiver guard, the delivery client and
    /// the worker the background loop runs (one replica at a time, under
    /// the `events` lease).
    pub events: Arc<crate::events::Outbound>,
    /// Leak reports' sender keys and per-address budget.
    pub leaks: Arc<crate::leaks::Leaks>,
    /// Set on SIGTERM/SIGINT: the replica is leaving (see `server.drain_s`).
    /// Written by the signal handler, read by readiness (503) and the
    /// request middleware (`Connection: close`).
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    /// What the status lists read through.
    pub fn status_sources(&self) -> crate::status_lists::Sources<'_> {
        crate::status_lists::Sources {
            pool: &self.pool,
            inline: &self.inline,
            keyring: &self.keyring,
        }
    }

    /// What the event worker reads through.
    pub fn event_sources(&self) -> crate::events::Sources<'_> {
        crate::events::Sources {
            pool: &self.pool,
            keyring: &self.keyring,
            master: &self.master,
        }
    }

    /// Reloads this replica's signing keys from the database: the periodic
    /// reload, and the admin routes right after a change so this replica
    /// serves it at once. Blocking.
    pub fn reload_keys(&self) -> Result<(), crate::tokens::signing::SigningError> {
        crate::tokens::signing::reload(
            &self.pool,
            &self.master,
            &self.settings.signing,
            &self.keyring,
        )
    }
}
