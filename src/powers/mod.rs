//! Every admin power, decided here and nowhere else.
//!
//! A power is a value: an action that needs a permission takes the
//! capability this module hands out ([`KeyAdmin`], [`SelfService`],
//! [`KeyReader`], [`SettingsAdmin`] …), never a boolean checked somewhere
//! else. The rules of DESIGN §5 live inside these types:
//!
//! - **No caller acts above itself.** Every change to a key (PATCH, revoke,
//!   bulk revoke, delete, rotate) needs the key's reserved scopes ⊆ the
//!   caller's, for `admin:keys:write` holders too.
//! - **`keys:self` creates and revokes, nothing else**, and only keys it owns
//!   (owner = its `sub`). `admin:keys:read` lets it see more, not change more.
//! - **A child stays inside its parent**: a key made through `keys:self`
//!   inherits and may only narrow its parent's allow-list, expiry, audiences,
//!   token TTL and rate ([`SelfService::bound_child`]).
//!
//! Capabilities are owned values so they can travel into the blocking
//! database task and be checked there, against rows read inside the
//! transaction that writes.

mod capabilities;
mod principal;

pub use capabilities::*;
pub use principal::Principal;
