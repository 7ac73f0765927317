//! Exchanging an API key for a JWT. The HTTP floor (`input::api_key`,
//! `input::client_credentials`, `input::token_exchange`, or
//! [`signed`] for a signed request) turns each request into [`Presented`]
//! credentials and [`Requested`](crate::tokens::issue::Requested)
//! parameters; [`exchange()`] is the one checklist they share, in this order:
//!
//! 1. parse the secret (format and checksum) — no database work for garbage;
//! 2. one indexed query: key, tenant policy and the tenant's registered
//!    audiences by the secret's hash — on SQLite inline on the worker's own
//!    read connection, on PostgreSQL batched per worker (`db::point_read`,
//!    `db::Batched`);
//! 3. the key is the named one, standard, active, within any grace period;
//! 4. the key's rate bucket admits the request — only now that the key is
//!    proven, so no one else can spend it, and before anything is written
//!    for the request (a signed request's nonce);
//! 5. the tenant allows exchanges, from this address
//!    ([`admit`](authenticate::admit)); a signed request's nonce is recorded;
//! 6. TTL, audience and scope rules; the token's audience (unless it is the
//!    admin audience) is registered to the tenant right now (as read in 2;
//!    a signed request's lookup asks the database here);
//! 7. sign, count the use in memory.
//!
//! Failures in 1–3 answer identically whatever the cause: which answer
//! depends on the grant ([`Flavor`]). Only the audit tells the causes apart
//! ([`Reason`]): a known key refused is a denial of that key, in its
//! tenant's log; a secret that matches no key is summarised per address.
//! Client authentication elsewhere ([`authenticate_client`]) runs steps 1–5
//! and audits the same way.

pub mod authenticate;
mod context;
mod credential;
mod exchange;
mod grant;
pub mod introspect;
mod refusal;
pub mod revoke;
pub mod signed;
pub mod store;

// The grants' API in one place. Inside `grants`, modules name each other
// by their own paths, never through these, so no file depends on this one.
pub use authenticate::judge;
pub use context::Context;
pub use credential::{
    Credential, ExchangeRequest, Flavor, Presented, TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_API_KEY, TOKEN_TYPE_JWT, TokenResponse,
};
pub use exchange::{authenticate_client, exchange};
pub use grant::{Grant, TokenRequest, issue};
pub use refusal::{Denial, Reason};
