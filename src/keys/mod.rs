//! API keys: the secret format, storage (hashes only), the admin service
//! (create, list, change, revoke, rotate) and the lookup the token
//! endpoint uses.

pub mod list;
pub mod request;
pub mod revoke;
pub mod rotate;
pub mod rules;
pub mod secret;
pub mod service;
pub mod size;
pub mod store;
pub mod view;

// What a stored key is (its derived status, its security level) belongs
// with the rows, so the storage floor never reaches up for it.
pub use store::{SecurityLevel, Status};
