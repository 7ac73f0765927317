//! Security events out: every key, tenant and signing-key change that a
//! receiver may care about becomes a Security Event Token (RFC 8417), signed
//! with keymint's signing keys and pushed to each of the tenant's registered
//! receivers (RFC 8935).
//!
//! - `store` (storage floor) holds the receivers and the outbox, written in
//!   the change's own transaction by `audit::write`;
//! - `deliver` is the worker that pushes due events under a lease, with
//!   retries, and `expiry` the scan that warns of keys about to expire;
//! - `outbound` guards every call to a receiver against request forgery;
//! - `set` turns an outbox row into the SET; `streams` is the admin API.

pub mod deliver;
pub mod expiry;
pub mod outbound;
pub mod request;
pub mod set;
pub mod store;
pub mod streams;
pub mod view;

pub use deliver::{Outbound, Round, Sources};
